"""Fault injection for the GDC emulator: the failures real GDC clients meet (GDC_API.md 12, 16).

Grammar (``--faults SPEC`` on the CLI, ``emulator.faults.set(SPEC)`` in tests)::

    SPEC  := RULE [";" RULE]...            (whitespace around rules is ignored; "" = no faults)
    RULE  := KIND [":" ARG] ["@" ROUTE] ["*" COUNT]
    ROUTE := a path prefix such as /data, /files, /data/<uuid>; default "/" (every request).
             Matching is per path segment (/data matches /data and /data/x, not /database) and
             ignores a leading /v0.
    COUNT := how many matching requests the rule fires for, then it is spent; default 1;
             "inf" fires for ever.

Rules are tried in order; a request fires at most one rule (the first live one whose route
matches), so ``429:0@/files*2;500@/files`` answers the first two /files calls 429, the third 500.

| KIND       | ARG (default)    | what the client sees                                                   |
|------------|------------------|------------------------------------------------------------------------|
| 429        | seconds (1)      | 429, ``Retry-After: <seconds>``, JSON ``{"message": ...}``             |
| 500        | -                | 500 JSON ``{"message": "internal server error"}``                      |
| 502, 503   | -                | 502/503 with an HTML gateway page                                      |
| 504        | -                | 504 with an HTML ``<title>504 Gateway Timeout</title>`` page           |
| other 4xx/5xx | -             | that status with a JSON ``{"message": ...}`` body                      |
| drop       | bytes (0)        | headers + the first N body bytes, then the socket is reset (RST)        |
| truncate   | bytes (half)     | full Content-Length, N body bytes, then an orderly close (short body)   |
| corrupt    | offset (0)       | full body with the byte at OFFSET (clamped to the last) XOR 0xFF        |
| norange    | -                | a request WITH a Range header gets 200 and the whole body (no 206)      |
| delay      | seconds (1)      | the normal answer after sleeping (client read-timeout tests)            |

Example: ``429:0@/files*2;drop:50000@/data;corrupt:100@/data*inf``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from histo_renn_dagster.core.errors import FaultSpecError

BODY_KINDS = ("drop", "truncate", "corrupt")
OTHER_KINDS = ("norange", "delay")
_ARG_DEFAULTS: dict[str, float | None] = {
    "429": 1,
    "drop": 0,
    "truncate": None,
    "corrupt": 0,
    "delay": 1,
}
_TAKES_ARG = ("429", "drop", "truncate", "corrupt", "delay")


@dataclass(frozen=True)
class FaultRule:
    """One parsed rule; ``count`` None means for ever."""

    kind: str
    arg: float | None
    route: str
    count: int | None

    @property
    def status(self) -> int | None:
        return int(self.kind) if self.kind.isdigit() else None

    def matches(self, path: str) -> bool:
        route = self.route.rstrip("/")
        return route == "" or path == route or path.startswith(route + "/")

    def __str__(self) -> str:
        arg = "" if self.arg is None else f":{self.arg:g}"
        count = "inf" if self.count is None else str(self.count)
        return f"{self.kind}{arg}@{self.route}*{count}"


def _number(text: str, rule: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FaultSpecError(
            f"fault rule {rule!r}: {what} must be a number, got {text!r}"
        ) from None
    if value < 0:
        raise FaultSpecError(f"fault rule {rule!r}: {what} must be >= 0, got {text!r}")
    return value


def parse_rule(text: str) -> FaultRule:
    rule = text.strip()
    head, star, count_text = rule.partition("*")
    head, at, route = head.partition("@")
    kind, colon, arg_text = head.partition(":")
    kind = kind.strip().lower()
    if kind.isdigit():
        if len(kind) != 3 or not 400 <= int(kind) <= 599:
            raise FaultSpecError(f"fault rule {rule!r}: status must be 400-599, got {kind!r}")
    elif kind not in BODY_KINDS + OTHER_KINDS:
        raise FaultSpecError(
            f"fault rule {rule!r}: unknown kind {kind!r} (expected a 4xx/5xx status or one of "
            f"{', '.join(BODY_KINDS + OTHER_KINDS)})"
        )
    arg: float | None = _ARG_DEFAULTS.get(kind)
    if colon:
        if kind not in _TAKES_ARG:
            raise FaultSpecError(f"fault rule {rule!r}: kind {kind!r} takes no argument")
        arg = _number(arg_text.strip(), rule, "argument")
        if kind in BODY_KINDS and arg != int(arg):
            raise FaultSpecError(f"fault rule {rule!r}: {kind} needs a whole number of bytes")
    route = route.strip() if at else "/"
    if not route.startswith("/"):
        raise FaultSpecError(f"fault rule {rule!r}: route must start with '/', got {route!r}")
    if route == "/v0" or route.startswith("/v0/"):
        route = route[3:] or "/"
    count: int | None = 1
    if star:
        count_text = count_text.strip().lower()
        if count_text == "inf":
            count = None
        elif count_text.isdigit() and int(count_text) > 0:
            count = int(count_text)
        else:
            raise FaultSpecError(
                f"fault rule {rule!r}: count must be a positive integer or 'inf', got {count_text!r}"
            )
    return FaultRule(kind, arg, route, count)


def parse_faults(spec: str | None) -> list[FaultRule]:
    """All rules of a spec string (see the module docstring); raises FaultSpecError."""
    if not spec or not spec.strip():
        return []
    return [parse_rule(part) for part in spec.split(";") if part.strip()]


@dataclass
class _LiveRule:
    rule: FaultRule
    left: int | None  # None = for ever

    @property
    def live(self) -> bool:
        return self.left is None or self.left > 0


class FaultSet:
    """The live rules of one emulator; thread-safe, consumed as requests arrive."""

    def __init__(self, spec: str | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[_LiveRule] = []
        self.fired: list[tuple[str, str]] = []  # (rule text, request path)
        self.set(spec)

    def set(self, spec: str | None) -> None:
        """Replace every rule with those of ``spec`` (validated before anything changes)."""
        rules = parse_faults(spec)
        with self._lock:
            self._rules = [_LiveRule(rule, rule.count) for rule in rules]

    def add(self, spec: str) -> None:
        rules = parse_faults(spec)
        with self._lock:
            self._rules.extend(_LiveRule(rule, rule.count) for rule in rules)

    def clear(self) -> None:
        with self._lock:
            self._rules = []
            self.fired = []

    def pending(self) -> list[FaultRule]:
        """Rules that can still fire."""
        with self._lock:
            return [entry.rule for entry in self._rules if entry.live]

    def take(self, path: str, *, ranged: bool = False) -> FaultRule | None:
        """Consume and return the first live rule for this request, if any.

        ``norange`` only applies to requests that carry a Range header, so other requests pass
        it by without using it up.
        """
        with self._lock:
            for entry in self._rules:
                rule = entry.rule
                if not entry.live or not rule.matches(path):
                    continue
                if rule.kind == "norange" and not ranged:
                    continue
                if entry.left is not None:
                    entry.left -= 1
                self.fired.append((str(rule), path))
                return rule
        return None

    def __repr__(self) -> str:
        return f"FaultSet({'; '.join(str(r) for r in self.pending())!r})"
