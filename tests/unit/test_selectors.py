"""Label and field selectors."""

from __future__ import annotations

import pytest

from aiokube.api.selectors import (
    label_selector_from_dict,
    parse_field_selector,
    parse_label_selector,
    unsupported_field_message,
)

LABELS = {"app": "web", "tier": "front", "env": ""}


@pytest.mark.parametrize(("text", "expected"), [
    ("", True),
    ("app=web", True),
    ("app==web", True),
    ("app!=web", False),
    ("missing!=x", True),
    ("app=web,tier=back", False),
    ("tier in (front,back)", True),
    ("tier notin (front)", False),
    ("missing notin (a)", True),
    ("app", True),
    ("!app", False),
    ("!missing", True),
    ("env=", True),
    (" app = web , tier in ( front ) ", True),
    ("example.com/role", False),
])
def test_label_selector_matches(text: str, expected: bool) -> None:
    assert parse_label_selector(text).matches(LABELS) is expected


@pytest.mark.parametrize("text", ["app=", "=web", "app in front", "app in (a", "a=b,", "a b", "!", "bad key!=x",
                                  "app=we b", "-app=x"])
def test_label_selector_syntax_errors(text: str) -> None:
    if text == "app=":
        assert parse_label_selector(text).matches({"app": ""})
        return
    with pytest.raises(ValueError):
        parse_label_selector(text)


def test_label_selector_to_string_round_trip() -> None:
    selector = parse_label_selector("tier in (b,a),app=web,!old,new")
    assert selector.to_string() == "app=web,new,!old,tier in (a,b)"
    assert parse_label_selector(selector.to_string()).matches({"app": "web", "new": "", "tier": "a"})


def test_label_selector_from_dict() -> None:
    assert not label_selector_from_dict(None).matches(LABELS)
    assert label_selector_from_dict({}).matches(LABELS)
    selector = label_selector_from_dict({
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]},
                             {"key": "old", "operator": "DoesNotExist"},
                             {"key": "env", "operator": "Exists"},
                             {"key": "zone", "operator": "NotIn", "values": ["a"]}]})
    assert selector.matches(LABELS)
    assert not selector.matches({**LABELS, "old": "1"})
    with pytest.raises(ValueError):
        label_selector_from_dict({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})
    with pytest.raises(ValueError):
        label_selector_from_dict({"matchExpressions": [{"key": "a", "operator": "Near"}]})


def test_field_selector() -> None:
    selector = parse_field_selector("metadata.name=web,spec.nodeName!=n1,status.phase==Running")
    assert selector.fields == {"metadata.name", "spec.nodeName", "status.phase"}
    assert selector.matches({"metadata.name": "web", "spec.nodeName": "n2", "status.phase": "Running"})
    assert not selector.matches({"metadata.name": "web", "spec.nodeName": "n1", "status.phase": "Running"})
    repeated = parse_field_selector("involvedObject.name=a,involvedObject.name=a")
    assert repeated.matches({"involvedObject.name": "a"})
    assert parse_field_selector("").matches({})
    escaped = parse_field_selector(r"metadata.name=a\,b\=c")
    assert escaped.matches({"metadata.name": "a,b=c"})
    assert parse_field_selector(escaped.to_string()) == escaped
    for bad in ("metadata.name", "=x", r"a=b\q", "a=b=c"):
        with pytest.raises(ValueError):
            parse_field_selector(bad)
    assert unsupported_field_message("foo", ["metadata.name", "metadata.namespace"]) == (
        '"foo" is not a known field selector: only "metadata.name", "metadata.namespace"')
