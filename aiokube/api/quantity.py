"""Kubernetes resource quantities ("100m", "1.5Gi", "2e3", "128974848") as exact decimals.

Grammar (apimachinery resource.Quantity): a signed decimal number followed by an optional suffix, either a
binary SI suffix (Ki Mi Gi Ti Pi Ei), a decimal SI suffix (n u m "" k M G T P E) or a decimal exponent (e3, E-2).
Values are kept as `Decimal` so "0.1" + "0.2" CPUs is exactly "300m"; callers convert at the edge with
`milli_value` (CPU) and `int_value` (bytes, counts), which round up like Kubernetes' `MilliValue`/`Value`.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
            "P": Decimal("1e15"), "E": Decimal("1e18")}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[numkMGTPE]?)$")

# Parsing is on the scheduler's hot path (every pod's requests, every node's allocatable), and real clusters
# repeat the same few strings ("100m", "128Mi") endlessly, so parsed values are memoised.
_cache: dict[str, Decimal] = {}


class QuantityError(ValueError):
    """The string is not a valid Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> Decimal:
    """The exact value of a quantity; raises QuantityError on malformed input."""
    if isinstance(value, bool):
        raise QuantityError(f"quantities must be strings or numbers, not {value!r}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    cached = _cache.get(value)
    if cached is not None:
        return cached
    match = _QUANTITY.match(value.strip())
    if not match:
        raise QuantityError(f"quantities must match the regular expression "
                            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {value!r}")
    number, suffix = match.groups()
    try:
        base = Decimal(number)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid decimals
        raise QuantityError(str(exc)) from exc
    if suffix in _BINARY:
        result = base * _BINARY[suffix]
    elif suffix[:1] in ("e", "E"):
        result = base.scaleb(int(suffix[1:]))
    else:
        result = base * _DECIMAL[suffix]
    if len(_cache) < 10_000:
        _cache[value] = result
    return result


def milli_value(value: str | int | float) -> int:
    """The quantity in thousandths, rounded up (CPU "250m" -> 250, "1" -> 1000)."""
    return int((parse_quantity(value) * 1000).to_integral_value(rounding=ROUND_CEILING))


def int_value(value: str | int | float) -> int:
    """The quantity as a whole number, rounded up (memory "1Ki" -> 1024, "0.5" -> 1)."""
    return int(parse_quantity(value).to_integral_value(rounding=ROUND_CEILING))
