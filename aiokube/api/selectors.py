"""Label and field selectors, shared by the API server (list/watch filtering) and the client's informers.

    parse_label_selector("app=web,tier in (a,b),!legacy").matches(labels)
    label_selector_from_dict({"matchLabels": {...}, "matchExpressions": [...]})   # metav1.LabelSelector
    parse_field_selector("metadata.name=web,status.phase!=Running").matches(fields)

Syntax and semantics follow apimachinery's `labels.Parse` and `fields.ParseSelector`: `=`/`==`/`!=`,
`in`/`notin`, `key`/`!key`; `!=` and `notin` also match objects without the key. An empty selector matches
everything; `label_selector_from_dict(None)` matches nothing (Kubernetes' rule for a nil LabelSelector).
Bad syntax raises ValueError with a Kubernetes-like message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "=", "==", "!="
IN, NOT_IN, EXISTS, DOES_NOT_EXIST = "in", "notin", "exists", "!"

_NAME = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)"
_KEY_RE = re.compile(rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_NAME}$")
_VALUE_RE = re.compile(rf"^({_NAME})?$")


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector: `key op values`."""

    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator in (EQUALS, DOUBLE_EQUALS, IN):
            return self.key in labels and labels[self.key] in self.values
        if self.operator in (NOT_EQUALS, NOT_IN):
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == EXISTS:
            return self.key in labels
        return self.key not in labels

    def to_string(self) -> str:
        if self.operator == EXISTS:
            return self.key
        if self.operator == DOES_NOT_EXIST:
            return "!" + self.key
        if self.operator in (IN, NOT_IN):
            return f"{self.key} {self.operator} ({','.join(sorted(self.values))})"
        return f"{self.key}{self.operator}{self.values[0]}"


@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of requirements; `nothing=True` is the selector that matches no object."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def empty(self) -> bool:
        return not self.requirements and not self.nothing

    def to_string(self) -> str:
        return ",".join(r.to_string() for r in sorted(self.requirements, key=lambda r: r.key))

    def __str__(self) -> str:
        return self.to_string()


def _check_key(key: str) -> None:
    if not key or len(key.rpartition("/")[2]) > 63 or not _KEY_RE.match(key):
        raise ValueError(f"unable to parse requirement: invalid label key {key!r}: name part must consist of "
                         "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                         "alphanumeric character")


def _check_value(value: str) -> None:
    if len(value) > 63 or not _VALUE_RE.match(value):
        raise ValueError(f"unable to parse requirement: invalid label value: {value!r}: a valid label must be an "
                         "empty string or consist of alphanumeric characters, '-', '_' or '.', and must start "
                         "and end with an alphanumeric character")


_TOKEN_RE = re.compile(r"\s*(\(|\)|,|==|!=|=|!|[^\s(),=!]+)")


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN_RE.match(text, position)
        if not match:
            raise ValueError(f"unable to parse requirement: unexpected character at {position} in {text!r}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse the string form (`a=b,c!=d,e in (f,g),!h`); "" selects everything."""
    tokens = _tokens(text or "")
    requirements: list[Requirement] = []
    i = 0

    def expect_value(index: int) -> tuple[str, int]:
        if index < len(tokens) and tokens[index] not in ("(", ")", ",", "=", "==", "!=", "!"):
            return tokens[index], index + 1
        return "", index  # an empty value is allowed: "a=" selects a="".

    while i < len(tokens):
        if tokens[i] == "!":
            if i + 1 >= len(tokens) or tokens[i + 1] in ("(", ")", ",", "=", "==", "!=", "!"):
                raise ValueError(f"unable to parse requirement: found '{tokens[i + 1] if i + 1 < len(tokens) else ''}'"
                                 ", expected: identifier after '!'")
            _check_key(tokens[i + 1])
            requirements.append(Requirement(tokens[i + 1], DOES_NOT_EXIST))
            i += 2
        else:
            key = tokens[i]
            if key in ("(", ")", ",", "=", "==", "!="):
                raise ValueError(f"found '{key}', expected: !, identifier, or 'end of string'")
            _check_key(key)
            i += 1
            if i >= len(tokens) or tokens[i] == ",":
                requirements.append(Requirement(key, EXISTS))
            elif tokens[i] in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
                operator = NOT_EQUALS if tokens[i] == NOT_EQUALS else EQUALS
                value, i = expect_value(i + 1)
                _check_value(value)
                requirements.append(Requirement(key, operator, (value,)))
            elif tokens[i] in (IN, NOT_IN):
                operator = tokens[i]
                if i + 1 >= len(tokens) or tokens[i + 1] != "(":
                    raise ValueError(f"found '{tokens[i + 1] if i + 1 < len(tokens) else ''}', expected: '('")
                i += 2
                values: list[str] = []
                while True:
                    value, i = expect_value(i)
                    _check_value(value)
                    values.append(value)
                    if i < len(tokens) and tokens[i] == ",":
                        i += 1
                        continue
                    if i < len(tokens) and tokens[i] == ")":
                        i += 1
                        break
                    raise ValueError(f"found '{tokens[i] if i < len(tokens) else ''}', expected: ',', or ')'")
                requirements.append(Requirement(key, operator, tuple(values)))
            else:
                raise ValueError(f"found '{tokens[i]}', expected: in, notin, =, ==, !=, or 'end of string'")
        if i < len(tokens):
            if tokens[i] != ",":
                raise ValueError(f"found '{tokens[i]}', expected: ',' or 'end of string'")
            i += 1
            if i >= len(tokens):
                raise ValueError("found 'end of string', expected: !, identifier")
    return LabelSelector(tuple(requirements))


def label_selector_from_dict(selector: Mapping[str, Any] | None) -> LabelSelector:
    """A metav1.LabelSelector; None matches nothing, {} matches everything."""
    if selector is None:
        return LabelSelector(nothing=True)
    requirements = []
    for key, value in sorted((selector.get("matchLabels") or {}).items()):
        _check_key(key)
        _check_value(str(value))
        requirements.append(Requirement(key, EQUALS, (str(value),)))
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key", ""), expression.get("operator", "")
        values = tuple(str(v) for v in expression.get("values") or ())
        _check_key(key)
        mapped = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}.get(operator)
        if mapped is None:
            raise ValueError(f'"{operator}" is not a valid label selector operator')
        if mapped in (IN, NOT_IN) and not values:
            raise ValueError("for 'in', 'notin' operators, values set can't be empty")
        if mapped in (EXISTS, DOES_NOT_EXIST) and values:
            raise ValueError("values set must be empty for exists and does not exist")
        requirements.append(Requirement(key, mapped, values))
    return LabelSelector(tuple(requirements))


# ------------------------------------------------------------------------------------------------ fields

@dataclass(frozen=True)
class FieldRequirement:
    field: str
    operator: str  # "=" or "!="
    value: str


@dataclass(frozen=True)
class FieldSelector:
    """A conjunction of `field=value` / `field!=value` terms (terms may repeat)."""

    requirements: tuple[FieldRequirement, ...] = ()

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(r.field for r in self.requirements)

    def matches(self, fields: Mapping[str, str]) -> bool:
        for r in self.requirements:
            present = fields.get(r.field)
            if r.operator == EQUALS and present != r.value:
                return False
            if r.operator == NOT_EQUALS and present == r.value:
                return False
        return True

    def empty(self) -> bool:
        return not self.requirements

    def to_string(self) -> str:
        return ",".join(f"{r.field}{r.operator}{escape_field_value(r.value)}" for r in self.requirements)

    def __str__(self) -> str:
        return self.to_string()


def escape_field_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _split_unescaped(text: str, separator: str) -> Iterable[str]:
    part, escaped = [], False
    for char in text:
        if escaped:
            part.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            yield "".join(part)
            part = []
        else:
            part.append(char)
    if escaped:
        raise ValueError(f"invalid field selector: {text!r}: trailing backslash")
    yield "".join(part)


def _unescape(value: str) -> str:
    out, escaped = [], False
    for char in value:
        if escaped:
            if char not in "\\,=":
                raise ValueError(f"invalid field selector value {value!r}: invalid escape sequence")
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "=,":
            raise ValueError(f"invalid field selector value {value!r}: unescaped {char!r}")
        else:
            out.append(char)
    return "".join(out)


def parse_field_selector(text: str | None) -> FieldSelector:
    """Parse `a=b,c==d,e!=f` (values may escape `\\`, `,` and `=` with a backslash); "" selects everything."""
    requirements: list[FieldRequirement] = []
    for term in _split_unescaped(text or "", ","):
        if not term.strip():
            if text and text.strip():
                raise ValueError(f"invalid selector: '{text}'; can't understand '{term}'")
            continue
        match = re.match(r"^([^=!\\]+?)\s*(==|!=|=)(.*)$", term)
        if not match:
            raise ValueError(f"invalid selector: '{text}'; can't understand '{term}'")
        field, operator, value = match.group(1).strip(), match.group(2), match.group(3)
        requirements.append(FieldRequirement(field, NOT_EQUALS if operator == NOT_EQUALS else EQUALS,
                                             _unescape(value)))
    return FieldSelector(tuple(requirements))


def unsupported_field_message(field: str, supported: Iterable[str]) -> str:
    """The 400 message for a field the resource cannot select on."""
    listed = ", ".join(f'"{f}"' for f in supported)
    return f'"{field}" is not a known field selector: only {listed}'
