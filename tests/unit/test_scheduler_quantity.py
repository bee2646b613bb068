"""aiokube.api.quantity: Kubernetes quantity parsing (the scheduler's resource arithmetic rests on it)."""

from decimal import Decimal

import pytest

from aiokube.api.quantity import QuantityError, int_value, milli_value, parse_quantity


@pytest.mark.parametrize(("text", "expected"), [
    ("100m", Decimal("0.1")), ("1", Decimal(1)), ("1.5", Decimal("1.5")), ("2k", Decimal(2000)),
    ("1Ki", Decimal(1024)), ("128Mi", Decimal(128 * 2**20)), ("1Gi", Decimal(2**30)), ("3M", Decimal(3_000_000)),
    ("1G", Decimal(10**9)), ("1e3", Decimal(1000)), ("2E-2", Decimal("0.02")), ("500u", Decimal("0.0005")),
    (".5", Decimal("0.5")), ("+1", Decimal(1)), (3, Decimal(3)),
])
def test_parse(text: str | int, expected: Decimal) -> None:
    assert parse_quantity(text) == expected


@pytest.mark.parametrize("bad", ["", "abc", "1.2.3", "1Kb", "Mi", "1 Gi x"])
def test_malformed_rejected(bad: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(bad)


def test_rounding_up() -> None:
    assert milli_value("250m") == 250
    assert milli_value("0.0001") == 1  # Kubernetes rounds sub-milli CPU up
    assert milli_value("2") == 2000
    assert int_value("0.5") == 1
    assert int_value("1Mi") == 1048576
