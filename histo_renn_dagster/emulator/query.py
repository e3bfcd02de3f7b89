"""Search semantics of /files, /cases, /projects: parameters, projection, expand, sort, paging.

Pagination arithmetic matches the real captures (GDC_API.md 2.3): ``page = from // size + 1``,
``pages = ceil(total / size)``; total 0 gives page 0 / pages 0; size 0 gives page 1 / pages total.
Without ``sort`` hits come in id order so paging loops see every hit exactly once.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from histo_renn_dagster.core.errors import GDCQueryError
from histo_renn_dagster.emulator.filter_engine import (
    compile_filters,
    strip_prefix,
    values_at,
    without_field,
)

FORMATS = ("JSON", "TSV", "XML")
_LEAF = "leaf"  # copy the value
_LEAF_NULL = "leaf-null"  # copy the value, or null when absent (expand groups, default fields)
Tree = dict[str, Any]


@dataclass(frozen=True)
class Endpoint:
    """One searchable index: its documents, id field and the groups ``expand`` knows."""

    name: str
    id_field: str
    docs: Sequence[dict[str, Any]]
    complete: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    lazy_fields: tuple[str, ...] = ()
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    nested: tuple[str, ...] = ()

    def document(self, doc_id: str) -> dict[str, Any] | None:
        return next((d for d in self.docs if d.get(self.id_field) == doc_id), None)


def group_schema(
    docs: Sequence[dict[str, Any]], extra_root: Sequence[str] = ()
) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """Scalar keys of every object path (``""`` = root) and the paths that are lists of objects."""
    groups: dict[str, set[str]] = {"": set(extra_root)}
    nested: set[str] = set()

    def visit(node: dict[str, Any], path: str) -> None:
        keys = groups.setdefault(path, set())
        for key, value in node.items():
            sub = f"{path}.{key}" if path else key
            if isinstance(value, dict):
                visit(value, sub)
            elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
                nested.add(sub)
                for item in value:
                    if isinstance(item, dict):
                        visit(item, sub)
            else:
                keys.add(key)

    for doc in docs:
        visit(doc, "")
    return {k: tuple(sorted(v)) for k, v in groups.items()}, tuple(sorted(nested))


@dataclass(frozen=True)
class SearchRequest:
    """Parsed search parameters (GDC_API.md 2.1)."""

    filters: dict[str, Any] | None = None
    fields: tuple[str, ...] = ()
    expand: tuple[str, ...] = ()
    sort: tuple[tuple[str, bool], ...] = ()  # (path, descending)
    sort_text: str = ""
    size: int = 10
    from_: int = 0
    format: str = "JSON"
    pretty: bool = False
    facets: tuple[str, ...] = ()
    return_type: str | None = None


def _csv(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        parts = [str(v) for v in value]
    elif isinstance(value, str):
        parts = value.split(",")
    else:
        raise GDCQueryError(f"{name} must be a comma-separated string, got {value!r}")
    return tuple(p.strip() for p in parts if p.strip())


def _integer(value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        raise GDCQueryError(f"{name} must be a non-negative integer, got {value!r}") from None
    if number < 0:
        raise GDCQueryError(f"{name} must be a non-negative integer, got {value!r}")
    return number


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1", "yes", "")


def parse_filters(value: Any) -> dict[str, Any] | None:
    """``filters`` as an object or a JSON string (gdc-client sends a string inside JSON)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise GDCQueryError(f"filters is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise GDCQueryError(f"filters must be a JSON object, got {type(value).__name__}")
    return value


def parse_sort(value: Any, endpoint: str) -> tuple[tuple[tuple[str, bool], ...], str]:
    keys = []
    for part in _csv(value, "sort"):
        name, _, direction = part.partition(":")
        direction = direction.strip().lower() or "asc"
        if direction not in ("asc", "desc"):
            raise GDCQueryError(f"sort {part!r}: direction must be asc or desc")
        keys.append((strip_prefix(name.strip(), endpoint), direction == "desc"))
    return tuple(keys), ",".join(_csv(value, "sort"))


def parse_search(params: Mapping[str, Any], endpoint: str) -> SearchRequest:
    """Validate raw GET/POST parameters; strings are accepted for every number and flag."""
    fmt = str(params.get("format") or "JSON").upper()
    if fmt not in FORMATS:
        raise GDCQueryError(f"format must be one of {', '.join(FORMATS)}, got {params['format']!r}")
    sort, sort_text = parse_sort(params.get("sort"), endpoint)
    filters = parse_filters(params.get("filters"))
    compile_filters(filters, endpoint)  # validate now: a bad filter is a 400 even on no data
    return_type = params.get("return_type")
    return SearchRequest(
        filters=filters,
        fields=tuple(strip_prefix(f, endpoint) for f in _csv(params.get("fields"), "fields")),
        expand=tuple(strip_prefix(e, endpoint) for e in _csv(params.get("expand"), "expand")),
        sort=sort,
        sort_text=sort_text,
        size=_integer(params.get("size"), "size", 10),
        from_=_integer(params.get("from"), "from", 0),
        format=fmt,
        pretty=_truthy(params["pretty"]) if "pretty" in params else False,
        facets=_csv(params.get("facets"), "facets"),
        return_type=str(return_type).lower() if return_type else None,
    )


def pagination(total: int, count: int, size: int, from_: int, sort_text: str) -> dict[str, Any]:
    if total == 0:
        page, pages = 0, 0
    elif size == 0:
        page, pages = 1, total
    else:
        page, pages = from_ // size + 1, math.ceil(total / size)
    return {
        "count": count,
        "total": total,
        "size": size,
        "from": from_,
        "sort": sort_text,
        "page": page,
        "pages": pages,
    }


def _insert(tree: Tree, path: str, marker: str) -> None:
    parts = path.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if child in (_LEAF, _LEAF_NULL):
            return  # the whole parent is already requested
        node = node.setdefault(part, {})
    if node.get(parts[-1]) != _LEAF:
        node[parts[-1]] = marker if not isinstance(node.get(parts[-1]), dict) else _LEAF


def projection_tree(endpoint: Endpoint, request: SearchRequest) -> Tree:
    """Which leaves a hit keeps: requested fields, expanded groups, or the root defaults."""
    tree: Tree = {}
    for name in request.fields:
        _insert(tree, name, _LEAF)
    for group in request.expand:
        keys = endpoint.groups.get(group)
        if keys is None:
            raise GDCQueryError(f"expand: unknown field group {group!r} on /{endpoint.name}")
        for key in keys:
            _insert(tree, f"{group}.{key}", _LEAF_NULL)
    if not request.fields:  # expand adds to the defaults; fields replaces them
        for key in endpoint.groups.get("", ()):
            _insert(tree, key, _LEAF_NULL)
    return tree


def project(node: dict[str, Any], tree: Tree) -> dict[str, Any]:
    """Keep only the leaves in ``tree``; nested lists keep their shape, empty objects vanish."""
    out: dict[str, Any] = {}
    for key, sub in tree.items():
        if key not in node:
            if sub == _LEAF_NULL:
                out[key] = None
            continue
        value = node[key]
        if sub in (_LEAF, _LEAF_NULL):
            out[key] = json.loads(json.dumps(value))  # deep copy of plain JSON
        elif isinstance(value, dict):
            inner = project(value, sub)
            if inner:
                out[key] = inner
        elif isinstance(value, list):
            items = [project(v, sub) for v in value if isinstance(v, dict)]
            items = [i for i in items if i]
            if items:
                out[key] = items
    return out


def _tree_touches(tree: Tree, names: Sequence[str]) -> bool:
    return any(name in tree for name in names)


def shape_hit(endpoint: Endpoint, doc: dict[str, Any], tree: Tree) -> dict[str, Any]:
    if endpoint.complete is not None and _tree_touches(tree, endpoint.lazy_fields):
        doc = endpoint.complete(doc)
    return {"id": doc[endpoint.id_field], **project(doc, tree)}


def _sort_docs(docs: list[dict[str, Any]], request: SearchRequest, id_field: str) -> None:
    docs.sort(key=lambda d: str(d.get(id_field)))
    for path, descending in reversed(request.sort):

        def key(doc: dict[str, Any], path: str = path, descending: bool = descending) -> Any:
            values = values_at(doc, path)
            if not values:
                return (1, 0, "")  # missing values sort last in both directions
            value = max(values, key=_order) if descending else min(values, key=_order)
            rank = _order(value)
            return (0, *((-rank[0], _Reverse(rank[1])) if descending else rank))

        docs.sort(key=key)


def _order(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, (int, float)):
        return (0, value)
    return (1, str(value))


class _Reverse:
    """Inverts comparisons so one ascending sort serves ``desc`` on strings and numbers alike."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Reverse) -> bool:
        return other.value < self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reverse) and other.value == self.value

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class SearchResult:
    hits: list[dict[str, Any]]
    pagination: dict[str, Any]
    aggregations: dict[str, Any] | None
    matched: list[dict[str, Any]]  # every matching document, sorted (manifests use it)


def _needs_completion(endpoint: Endpoint, paths: Sequence[str]) -> bool:
    return endpoint.complete is not None and any(
        p.split(".")[0] in endpoint.lazy_fields for p in paths
    )


def facet_buckets(docs: Sequence[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    counts: Counter[str] = Counter()
    for doc in docs:
        values = {json.dumps(v) if not isinstance(v, str) else v for v in values_at(doc, path)}
        counts.update(values or {"_missing"})
    return [
        {"doc_count": n, "key": key}
        for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def run_search(endpoint: Endpoint, request: SearchRequest) -> SearchResult:
    compiled = compile_filters(request.filters, endpoint.name)
    facet_paths = [strip_prefix(f, endpoint.name) for f in request.facets]
    read_paths = [*compiled.fields, *(p for p, _ in request.sort), *facet_paths]
    docs: list[dict[str, Any]] = list(endpoint.docs)
    if _needs_completion(endpoint, read_paths):
        assert endpoint.complete is not None
        docs = [endpoint.complete(d) for d in docs]
    matched = [d for d in docs if compiled.predicate(d)]
    _sort_docs(matched, request, endpoint.id_field)
    page = matched[request.from_ : request.from_ + request.size]
    tree = projection_tree(endpoint, request)
    hits = [shape_hit(endpoint, d, tree) for d in page]
    aggregations = None
    if facet_paths:
        aggregations = {}
        for raw, path in zip(request.facets, facet_paths, strict=True):
            own = compile_filters(
                without_field(request.filters, path, endpoint.name), endpoint.name
            )
            aggregations[raw] = {
                "buckets": facet_buckets([d for d in docs if own.predicate(d)], path)
            }
    paging = pagination(len(matched), len(hits), request.size, request.from_, request.sort_text)
    return SearchResult(hits, paging, aggregations, matched)


def envelope(result: SearchResult) -> dict[str, Any]:
    data: dict[str, Any] = {"hits": result.hits}
    if result.aggregations is not None:
        data["aggregations"] = result.aggregations
    data["pagination"] = result.pagination
    return {"data": data, "warnings": {}}


def single_entity(
    endpoint: Endpoint, doc: dict[str, Any], request: SearchRequest
) -> dict[str, Any]:
    """``/files/{id}``: the hit itself under ``data`` (no hits, no pagination)."""
    hit = shape_hit(endpoint, doc, projection_tree(endpoint, request))
    if "id" not in request.fields:
        hit.pop("id", None)  # real single-entity bodies carry file_id/case_id but no "id"
    return {"data": hit, "warnings": {}}
