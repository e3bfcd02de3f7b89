"""GDC ``filters`` JSON compiled to a predicate over documents.

Grammar (GDC_API.md section 3): a node is ``{"op": OP, "content": CONTENT}``; ``and``/``or`` take a
list of nodes, every other op takes ``{"field": PATH, "value": V}``. Leaves inside nested lists
match with *any* semantics (a hit matches when any nested element does), like Elasticsearch nested
queries. ``exclude`` drops a document when all of its values are in the list, ``excludeifany`` when
any is. ``*`` in a string value is a wildcard. A leading ``<endpoint>.`` on a field is stripped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from histo_renn_dagster.core.errors import GDCQueryError

Predicate = Callable[[dict[str, Any]], bool]

BOOL_OPS = ("and", "or")
VALUE_OPS = ("=", "!=", "in", "<", "<=", ">", ">=", "is", "not", "exclude", "excludeifany")
_MISSING_TOKENS = ("missing",)


@dataclass(frozen=True)
class CompiledFilter:
    """A filter ready to run: the predicate and every (prefix-stripped) field it reads."""

    predicate: Predicate
    fields: frozenset[str]


def strip_prefix(path: str, endpoint: str) -> str:
    """``files.data_type`` -> ``data_type`` on /files (only the endpoint's own name is stripped)."""
    prefix = endpoint + "."
    return path[len(prefix) :] if path.startswith(prefix) else path


def values_at(doc: Any, path: str) -> list[Any]:
    """Every non-null leaf value at a dotted path, lists flattened at each step (any-semantics)."""
    current: list[Any] = [doc]
    for key in path.split("."):
        nxt: list[Any] = []
        for node in current:
            if isinstance(node, dict) and node.get(key) is not None:
                nxt.extend(_flatten(node[key]))
        current = nxt
    return current


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [v for v in value if v is not None]
    return [value]


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _coerce_like(wanted: Any, actual: Any) -> Any:
    """Convert a filter value to the type of a document value (GDC accepts "12" for 12)."""
    if isinstance(actual, bool):
        if isinstance(wanted, str) and wanted.lower() in ("true", "false"):
            return wanted.lower() == "true"
        return wanted
    if isinstance(actual, (int, float)):
        number = _as_number(wanted)
        return wanted if number is None else number
    if isinstance(actual, str) and not isinstance(wanted, str):
        return json.dumps(wanted) if isinstance(wanted, bool) else str(wanted)
    return wanted


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def _equals(wanted: Any, actual: Any) -> bool:
    if isinstance(wanted, str) and "*" in wanted and isinstance(actual, str):
        return _wildcard(wanted).fullmatch(actual) is not None
    coerced = _coerce_like(wanted, actual)
    if isinstance(actual, bool) or isinstance(coerced, bool):
        return type(actual) is type(coerced) and actual == coerced
    return coerced == actual


def _compare(op: str, actual: Any, bound: Any) -> bool:
    left, right = _as_number(actual), _as_number(bound)
    if left is None or right is None:
        if isinstance(actual, (int, float)) or not isinstance(actual, str):
            return False
        left, right = actual, str(bound)  # type: ignore[assignment]
    if op == "<":
        return left < right  # type: ignore[operator]
    if op == "<=":
        return left <= right  # type: ignore[operator]
    if op == ">":
        return left > right  # type: ignore[operator]
    return left >= right  # type: ignore[operator]


def _value_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _leaf(op: str, content: Any, endpoint: str, where: str) -> tuple[Predicate, str]:
    if not isinstance(content, dict) or "field" not in content:
        raise GDCQueryError(
            f"filters{where}: op {op!r} needs content {{'field': ..., 'value': ...}}"
        )
    field = content["field"]
    if not isinstance(field, str) or not field:
        raise GDCQueryError(f"filters{where}: field must be a non-empty string, got {field!r}")
    path = strip_prefix(field, endpoint)
    if op in ("is", "not"):
        token = content.get("value", "MISSING")
        token = token[0] if isinstance(token, list) and len(token) == 1 else token
        if not isinstance(token, str) or token.lower() not in _MISSING_TOKENS:
            raise GDCQueryError(f"filters{where}: op {op!r} takes value 'MISSING', got {token!r}")
        if op == "is":
            return (lambda doc: not values_at(doc, path)), path
        return (lambda doc: bool(values_at(doc, path))), path
    if "value" not in content:
        raise GDCQueryError(f"filters{where}: op {op!r} on {field!r} has no 'value'")
    wanted = _value_list(content["value"])
    if not wanted:
        raise GDCQueryError(f"filters{where}: op {op!r} on {field!r} has an empty value list")
    if op in ("=", "in"):

        def match_any(doc: dict[str, Any]) -> bool:
            return any(_equals(w, a) for a in values_at(doc, path) for w in wanted)

        return match_any, path
    if op == "!=":
        return (lambda doc: not match_any_values(doc, path, wanted)), path
    if op == "exclude":

        def exclude(doc: dict[str, Any]) -> bool:
            actual = values_at(doc, path)
            return not (actual and all(any(_equals(w, a) for w in wanted) for a in actual))

        return exclude, path
    if op == "excludeifany":
        return (lambda doc: not match_any_values(doc, path, wanted)), path
    if len(wanted) != 1:
        raise GDCQueryError(f"filters{where}: op {op!r} on {field!r} takes one value, got {wanted}")
    bound = wanted[0]
    return (lambda doc: any(_compare(op, a, bound) for a in values_at(doc, path))), path


def match_any_values(doc: dict[str, Any], path: str, wanted: list[Any]) -> bool:
    return any(_equals(w, a) for a in values_at(doc, path) for w in wanted)


def _compile(node: Any, endpoint: str, where: str, fields: set[str]) -> Predicate:
    if not isinstance(node, dict) or "op" not in node:
        raise GDCQueryError(f"filters{where}: expected an object with 'op' and 'content'")
    op = node["op"]
    op = op.lower() if isinstance(op, str) else op
    content = node.get("content")
    if op in BOOL_OPS:
        if not isinstance(content, list):
            raise GDCQueryError(f"filters{where}: op {op!r} needs a list of nodes as content")
        parts = [
            _compile(c, endpoint, f"{where}.content[{i}]", fields) for i, c in enumerate(content)
        ]
        if op == "and":
            return lambda doc: all(p(doc) for p in parts)
        return lambda doc: any(p(doc) for p in parts)
    if op in VALUE_OPS:
        predicate, path = _leaf(op, content, endpoint, where)
        fields.add(path)
        return predicate
    raise GDCQueryError(
        f"filters{where}: unknown op {node['op']!r} (expected one of {', '.join(BOOL_OPS + VALUE_OPS)})"
    )


def compile_filters(filters: dict[str, Any] | None, endpoint: str) -> CompiledFilter:
    """Validate and compile a filter tree; ``None`` or ``{}`` matches everything."""
    if filters is None or filters == {}:
        return CompiledFilter(lambda doc: True, frozenset())
    fields: set[str] = set()
    predicate = _compile(filters, endpoint, "", fields)
    return CompiledFilter(predicate, frozenset(fields))


def without_field(
    filters: dict[str, Any] | None, path: str, endpoint: str
) -> dict[str, Any] | None:
    """The filters minus top-level ``and`` members on ``path`` (a facet ignores its own filter)."""
    if not filters:
        return filters
    content = filters.get("content")
    if isinstance(content, dict) and strip_prefix(str(content.get("field", "")), endpoint) == path:
        return None
    if str(filters.get("op", "")).lower() != "and":
        return filters
    kept = [
        node
        for node in filters.get("content") or []
        if not (
            isinstance(node, dict)
            and isinstance(node.get("content"), dict)
            and strip_prefix(str(node["content"].get("field", "")), endpoint) == path
        )
    ]
    return {"op": "and", "content": kept}


def iter_fields(filters: Any) -> Iterator[str]:
    """Every raw field name in a filter tree (for logs and diagnostics)."""
    if isinstance(filters, dict):
        content = filters.get("content")
        if isinstance(content, dict) and isinstance(content.get("field"), str):
            yield content["field"]
        elif isinstance(content, list):
            for child in content:
                yield from iter_fields(child)
