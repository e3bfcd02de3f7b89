"""Typed builder for GDC ``filters`` JSON (GDC_API.md section 3).

``field("cases.project.project_id").isin(["TCGA-BRCA"])`` builds a leaf; ``and_``/``or_`` combine
nodes; every node's ``to_dict()`` gives the ``{"op": ..., "content": ...}`` the API expects. Nodes
are frozen (hashable) so they can live inside frozen ``SearchSpec`` records.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

from histo_renn_dagster.core.errors import GDCFilterError

Scalar: TypeAlias = str | int | float | bool

# The GDC's documented token for "is (missing)" / "not (missing)".
MISSING = "MISSING"

# Dotted property paths such as ``cases.samples.sample_type``; nothing else is a field name.
_FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _check_scalar(op: str, field_name: str, value: object) -> Scalar:
    if isinstance(value, (str, int, float, bool)):
        return value
    raise GDCFilterError(
        f"filter {op!r} on field {field_name!r}: value must be a string, number or bool, "
        f"got {type(value).__name__} {value!r}"
    )


def _check_values(
    op: str, field_name: str, values: Iterable[Scalar] | Scalar
) -> tuple[Scalar, ...]:
    # A lone string is one value, not a sequence of characters.
    items = [values] if isinstance(values, (str, int, float, bool)) else list(values)
    if not items:
        raise GDCFilterError(f"filter {op!r} on field {field_name!r}: empty value list")
    return tuple(_check_scalar(op, field_name, v) for v in items)


@dataclass(frozen=True)
class Comparison:
    """A leaf node: one operator applied to one field."""

    op: str
    field: str
    value: Scalar | tuple[Scalar, ...]

    def to_dict(self) -> dict[str, Any]:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"op": self.op, "content": {"field": self.field, "value": value}}


@dataclass(frozen=True)
class Combination:
    """An ``and``/``or`` node over child nodes."""

    op: str
    nodes: tuple[FilterNode, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "content": [node.to_dict() for node in self.nodes]}


FilterNode: TypeAlias = Comparison | Combination


@dataclass(frozen=True)
class Field:
    """A field name waiting for an operator; build with :func:`field`."""

    name: str

    def isin(self, values: Iterable[Scalar] | Scalar) -> Comparison:
        """Any of ``values`` (``in``)."""
        return Comparison("in", self.name, _check_values("in", self.name, values))

    def exclude(self, values: Iterable[Scalar] | Scalar) -> Comparison:
        """Drop hits where *all* values of a multi-valued field are in ``values``."""
        return Comparison("exclude", self.name, _check_values("exclude", self.name, values))

    def excludeifany(self, values: Iterable[Scalar] | Scalar) -> Comparison:
        """Drop hits where *any* value of a multi-valued field is in ``values``."""
        return Comparison(
            "excludeifany", self.name, _check_values("excludeifany", self.name, values)
        )

    def eq(self, value: Scalar) -> Comparison:
        return Comparison("=", self.name, _check_scalar("=", self.name, value))

    def ne(self, value: Scalar) -> Comparison:
        return Comparison("!=", self.name, _check_scalar("!=", self.name, value))

    def lt(self, value: Scalar) -> Comparison:
        return Comparison("<", self.name, _check_scalar("<", self.name, value))

    def le(self, value: Scalar) -> Comparison:
        return Comparison("<=", self.name, _check_scalar("<=", self.name, value))

    def gt(self, value: Scalar) -> Comparison:
        return Comparison(">", self.name, _check_scalar(">", self.name, value))

    def ge(self, value: Scalar) -> Comparison:
        return Comparison(">=", self.name, _check_scalar(">=", self.name, value))

    def missing(self) -> Comparison:
        """The field is absent (``is MISSING``)."""
        return Comparison("is", self.name, MISSING)

    def present(self) -> Comparison:
        """The field is present (``not MISSING``)."""
        return Comparison("not", self.name, MISSING)


def field(name: str) -> Field:
    """Start a filter on the dotted field ``name`` (e.g. ``"cases.samples.sample_type"``)."""
    if not isinstance(name, str) or not _FIELD_RE.match(name):
        raise GDCFilterError(f"invalid GDC field name {name!r}: expected a dotted property path")
    return Field(name)


def _combine(op: str, nodes: tuple[FilterNode, ...]) -> Combination:
    if not nodes:
        raise GDCFilterError(f"{op!r} needs at least one filter node")
    for node in nodes:
        if not isinstance(node, (Comparison, Combination)):
            raise GDCFilterError(
                f"{op!r} takes filter nodes, got {type(node).__name__} {node!r} "
                "(did you forget to call an operator on field(...)?)"
            )
    return Combination(op, nodes)


def and_(*nodes: FilterNode) -> Combination:
    """All of ``nodes``."""
    return _combine("and", nodes)


def or_(*nodes: FilterNode) -> Combination:
    """Any of ``nodes``."""
    return _combine("or", nodes)
