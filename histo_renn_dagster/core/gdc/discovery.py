"""New-slide discovery: which GDC slides to register, which to run now, what to remember.

The GDC offers no reliable "new since" watermark for files: a file enters the index with a data
release, but its ``created_datetime`` predates that release (often by years), and file ids are
random UUIDs, so neither a date filter nor id paging finds every new file. Discovery therefore
lists the cohort's slide *ids only* (one small page per 2,000 slides) and diffs them against what
is already registered. The cursor keeps the data release and a digest of the listed ids, so a
tick whose listing did not change and that left no work behind stops right there.

Work per tick is bounded: at most ``max_new_partitions`` registrations and ``max_runs_per_tick``
run requests, and never more than ``max_in_flight`` slides queued or running at once; the rest is
picked up by the next tick. A slide can only run once the slide manifest table lists it (the
per-slide download reads its md5 and size there), so slides the manifest lacks ask for a manifest
refresh first and run on a later tick.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from histo_renn_dagster.core.errors import GDCResponseError
from histo_renn_dagster.core.gdc.queries import SearchSpec, slide_files_query

ID_PAGE_SIZE = 2000
"""Hits per page when listing ids only: ~80 bytes each, so a page stays well under 200 KB."""

CURSOR_VERSION = 1

# Partition states as Dagster names them (AssetPartitionStatus); None = never attempted.
MATERIALIZED = "MATERIALIZED"
IN_PROGRESS = "IN_PROGRESS"
FAILED = "FAILED"


class IdSearchClient(Protocol):
    def search(
        self,
        spec_or_endpoint: SearchSpec,
        *,
        fields: Sequence[str] | None = None,
        page_size: int | None = None,
    ) -> Iterable[dict[str, Any]]: ...


def list_slide_ids(
    client: IdSearchClient, project_id: str, *, page_size: int = ID_PAGE_SIZE
) -> list[str]:
    """File ids of every diagnostic slide of ``project_id`` (the manifest's query), sorted."""
    ids: list[str] = []
    for hit in client.search(
        slide_files_query(project_id), fields=("file_id",), page_size=page_size
    ):
        file_id = hit.get("file_id") or hit.get("id")
        if not isinstance(file_id, str) or not file_id:
            raise GDCResponseError(f"a {project_id} slide hit has no file_id: {hit!r}")
        ids.append(file_id)
    return sorted(ids)


def listing_digest(ids: Iterable[str]) -> str:
    """Order-independent sha256 of a set of ids (hex, 16 chars: a change detector, not a seal)."""
    digest = hashlib.sha256()
    for file_id in sorted(set(ids)):
        digest.update(file_id.encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class DiscoveryCursor:
    """What one tick leaves for the next: the listing it saw and how much work it left."""

    release: str
    digest: str
    listed: int
    pending: int

    def encode(self) -> str:
        return json.dumps(
            {
                "v": CURSOR_VERSION,
                "release": self.release,
                "digest": self.digest,
                "listed": self.listed,
                "pending": self.pending,
            },
            sort_keys=True,
        )


def decode_cursor(text: str | None) -> DiscoveryCursor | None:
    """The cursor of the previous tick, or None when there is none or it cannot be read.

    An unreadable cursor (older format, hand-edited) is not an error: every tick lists the ids
    again, so starting over loses nothing but the early exit of one tick.
    """
    if not text:
        return None
    try:
        raw = json.loads(text)
        if raw.get("v") != CURSOR_VERSION:
            return None
        return DiscoveryCursor(
            str(raw["release"]), str(raw["digest"]), int(raw["listed"]), int(raw["pending"])
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


@dataclass(frozen=True)
class DiscoverySpec:
    """Per-tick bounds; see the module docstring."""

    max_new_partitions: int = 1000
    max_runs_per_tick: int = 16
    max_in_flight: int = 32

    def __post_init__(self) -> None:
        for name in ("max_new_partitions", "max_runs_per_tick", "max_in_flight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DiscoverySpec.{name} must be a positive int, got {value!r}")


def slide_state(statuses: Sequence[str | None]) -> str:
    """One slide's state over the assets of its run: ``todo``, ``in_flight``, ``failed``, ``done``.

    In flight wins (a run is queued or running); then failed (a failed slide is not retried
    automatically, so a broken file cannot make every tick start a doomed run); a slide is done
    only when every asset is materialized; anything never attempted is still to do.
    """
    if any(s == IN_PROGRESS for s in statuses):
        return "in_flight"
    if any(s == FAILED for s in statuses):
        return "failed"
    if statuses and all(s == MATERIALIZED for s in statuses):
        return "done"
    return "todo"


def is_settled(previous: DiscoveryCursor | None, release: str, digest: str) -> bool:
    """True when the listing is the one the last tick saw and that tick left nothing to do."""
    return (
        previous is not None
        and previous.release == release
        and previous.digest == digest
        and previous.pending == 0
    )


@dataclass(frozen=True)
class DiscoveryPlan:
    """What one tick does."""

    register: tuple[str, ...]
    """New partition keys to add now (sorted)."""
    run: tuple[str, ...]
    """Slides whose run to request now (sorted; all listed by the manifest table)."""
    refresh_manifest: bool
    """Some slide needs a run but the manifest table does not list it yet."""
    waiting_for_manifest: int
    in_flight: int
    failed: int
    pending: int
    """Slides (registered or not) still to register or run after this tick."""
    unregistered_left: int
    cursor: DiscoveryCursor

    def summary(self) -> dict[str, int | bool]:
        return {
            "registered": len(self.register),
            "requested": len(self.run),
            "refresh_manifest": self.refresh_manifest,
            "waiting_for_manifest": self.waiting_for_manifest,
            "in_flight": self.in_flight,
            "failed": self.failed,
            "pending": self.pending,
            "unregistered_left": self.unregistered_left,
        }


def plan_discovery(
    listed: Sequence[str],
    *,
    release: str,
    registered: Collection[str],
    in_manifest: Collection[str],
    states: Mapping[str, str],
    spec: DiscoverySpec | None = None,
) -> DiscoveryPlan:
    """Plan one tick.

    ``listed``: slide ids the GDC lists now; ``registered``: existing partition keys;
    ``in_manifest``: ids in the materialized slide manifest table; ``states``: ``slide_state``
    of registered slides (missing = ``todo``).
    """
    spec = spec or DiscoverySpec()
    listed_set = set(listed)
    registered_set = set(registered)
    new = sorted(listed_set - registered_set)
    register = new[: spec.max_new_partitions]
    known = sorted((listed_set & registered_set) | set(register))
    todo: list[str] = []
    in_flight = failed = 0
    for file_id in known:
        state = states.get(file_id, "todo")
        if state == "in_flight":
            in_flight += 1
        elif state == "failed":
            failed += 1
        elif state == "todo":
            todo.append(file_id)
    manifest = set(in_manifest)
    ready = [f for f in todo if f in manifest]
    waiting = len(todo) - len(ready)
    budget = max(0, min(spec.max_runs_per_tick, spec.max_in_flight - in_flight))
    run = tuple(ready[:budget])
    unregistered_left = len(new) - len(register)
    pending = len(todo) - len(run) + unregistered_left
    cursor = DiscoveryCursor(release, listing_digest(listed_set), len(listed_set), pending)
    return DiscoveryPlan(
        register=tuple(register),
        run=run,
        refresh_manifest=waiting > 0,
        waiting_for_manifest=waiting,
        in_flight=in_flight,
        failed=failed,
        pending=pending,
        unregistered_left=unregistered_left,
        cursor=cursor,
    )


def read_table_ids(path: Path, column: str = "file_id") -> set[str]:
    """The ids in one column of a Parquet table; empty when the table does not exist yet."""
    if not path.exists():
        return set()
    frame = pd.read_parquet(path, columns=[column])
    return {str(v) for v in frame[column].dropna()}
