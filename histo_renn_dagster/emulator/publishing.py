"""Publishing new slides while the emulator runs, as a new GDC data release would.

An emulator may hold a *reserve* catalogue: files that exist but are not served yet (for the
``demo`` cohort, the rest of TCGA-BRCA, i.e. the ``full`` catalogue). Publishing moves slides from
the reserve into the served catalogue, together with the case's other reserve files (its
STAR-Counts files), so a published slide can enter the cohort table. The served catalogue is
replaced as a whole (a new ``Catalogue`` and new routes, swapped under a lock): a request that is
being answered keeps the catalogue it started with, and md5/size stay lazy as before.

Admin routes (not part of the GDC API; nothing the GDC client calls):

* ``POST /_emulator/publish`` with ``{"count": N}`` or ``{"file_ids": [...]}`` publishes slides
  and answers ``{"data": {"published": [...], "served_files": n, "publishable": n}}``;
* ``GET /_emulator/publishable`` lists the reserve slides not yet served (ids, sorted).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from histo_renn_dagster.core.errors import EmulatorError
from histo_renn_dagster.emulator.catalogue import Catalogue
from histo_renn_dagster.emulator.responses import Response, error, json_response

if TYPE_CHECKING:
    from histo_renn_dagster.emulator.routes import Request
    from histo_renn_dagster.emulator.server import GDCEmulator

ADMIN_PREFIX = "/_emulator"
RESERVE_COHORTS = {"demo": "full"}
"""The catalogue new slides come from, per served cohort."""

MAX_PUBLISH = 2000

ReserveSource = Catalogue | Callable[[], Catalogue]


class PublishError(EmulatorError, ValueError):
    """A publish request that cannot be honoured; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def is_slide(doc: dict[str, Any]) -> bool:
    return doc.get("data_format") == "SVS"


def _case_ids(doc: dict[str, Any]) -> set[str]:
    return {c["case_id"] for c in doc.get("cases") or [] if c.get("case_id")}


def subset_catalogue(catalogue: Catalogue, file_ids: Iterable[str]) -> Catalogue:
    """The catalogue restricted to ``file_ids`` (documents and blobs shared, not copied)."""
    keep = set(file_ids)
    unknown = keep - {d["file_id"] for d in catalogue.files}
    if unknown:
        raise EmulatorError(f"catalogue {catalogue.name!r} has no file {sorted(unknown)[0]}")
    files = [d for d in catalogue.files if d["file_id"] in keep]
    blobs = {d["file_id"]: catalogue.blob(d["file_id"]) for d in files}
    return Catalogue(catalogue.name, catalogue.data_release, files, blobs)


def hold_back_slides(catalogue: Catalogue, count: int) -> tuple[Catalogue, Catalogue]:
    """``(served, reserve)``: the catalogue without its last ``count`` slides (by file id), and
    the whole catalogue as the reserve they can be published from."""
    slides = sorted(d["file_id"] for d in catalogue.files if is_slide(d))
    if not 0 <= count <= len(slides):
        raise EmulatorError(f"cannot hold back {count} of the {len(slides)} slides")
    held = set(slides[len(slides) - count :])
    served = subset_catalogue(
        catalogue, (d["file_id"] for d in catalogue.files if d["file_id"] not in held)
    )
    return served, catalogue


def publishable_slides(served: Catalogue, reserve: Catalogue) -> list[str]:
    """Reserve slides the served catalogue does not have, sorted by file id."""
    return sorted(
        d["file_id"] for d in reserve.files if is_slide(d) and served.file(d["file_id"]) is None
    )


def choose_slides(
    served: Catalogue,
    reserve: Catalogue,
    *,
    count: int | None = None,
    file_ids: Sequence[str] | None = None,
) -> list[str]:
    """The slides a request asks for: the first ``count`` publishable ones, or ``file_ids``."""
    if (count is None) == (not file_ids):
        raise PublishError("give either 'count' (a positive int) or 'file_ids' (a list of ids)")
    if file_ids:
        chosen = list(dict.fromkeys(file_ids))
        for file_id in chosen:
            doc = reserve.file(file_id)
            if doc is None or not is_slide(doc):
                raise PublishError(f"{file_id} is not a slide of the reserve catalogue", 404)
            if served.file(file_id) is not None:
                raise PublishError(f"{file_id} is already published", 409)
        return chosen
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_PUBLISH:
        raise PublishError(f"'count' must be an int from 1 to {MAX_PUBLISH}, got {count!r}")
    available = publishable_slides(served, reserve)
    if not available:
        raise PublishError("nothing left to publish: every reserve slide is served", 409)
    return available[:count]


def publish_into(
    served: Catalogue, reserve: Catalogue, slide_ids: Sequence[str]
) -> tuple[Catalogue, list[dict[str, Any]]]:
    """The served catalogue plus the slides and their cases' other unserved reserve files."""
    cases = {c for s in slide_ids for c in _case_ids(reserve.file(s) or {})}
    wanted = set(slide_ids)
    added = [
        d
        for d in reserve.files
        if served.file(d["file_id"]) is None
        and (d["file_id"] in wanted or (not is_slide(d) and _case_ids(d) & cases))
    ]
    blobs = {**served.blobs, **{d["file_id"]: reserve.blob(d["file_id"]) for d in added}}
    catalogue = Catalogue(served.name, served.data_release, [*served.files, *added], blobs)
    records = []
    for slide_id in slide_ids:
        doc = reserve.file(slide_id) or {}
        case = (doc.get("cases") or [{}])[0]
        related = sorted(
            d["file_id"] for d in added if not is_slide(d) and _case_ids(d) & _case_ids(doc)
        )
        records.append(
            {
                "file_id": slide_id,
                "file_name": doc.get("file_name"),
                "case_id": case.get("case_id"),
                "case": case.get("submitter_id"),
                "site": (case.get("tissue_source_site") or {}).get("code"),
                "related_files": related,
            }
        )
    return catalogue, records


class Publisher:
    """The admin side of one emulator: publishes reserve slides into what it serves."""

    def __init__(self, emulator: GDCEmulator, reserve: ReserveSource | None) -> None:
        self.emulator = emulator
        self._reserve_source = reserve
        self._reserve: Catalogue | None = None
        self._lock = threading.Lock()

    def _reserve_catalogue(self) -> Catalogue:
        if self._reserve is None:
            source = self._reserve_source
            if source is None:
                raise PublishError(
                    f"the {self.emulator.catalogue.name!r} emulator has no reserve catalogue to "
                    f"publish from (cohorts with one: {', '.join(RESERVE_COHORTS)})",
                    409,
                )
            self._reserve = source if isinstance(source, Catalogue) else source()
        return self._reserve

    def publishable(self) -> list[str]:
        with self._lock:
            return publishable_slides(self.emulator.catalogue, self._reserve_catalogue())

    def publish(
        self, *, count: int | None = None, file_ids: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        with self._lock:
            reserve = self._reserve_catalogue()
            served = self.emulator.catalogue
            chosen = choose_slides(served, reserve, count=count, file_ids=file_ids)
            catalogue, records = publish_into(served, reserve, chosen)
            self.emulator.serve_catalogue(catalogue)
            return records

    def handle(self, request: Request) -> Response:
        action = request.route[len(ADMIN_PREFIX) :].strip("/")
        try:
            if action == "publish" and request.method == "POST":
                file_ids = request.params.get("file_ids")
                if file_ids is not None and not (
                    isinstance(file_ids, list) and all(isinstance(f, str) for f in file_ids)
                ):
                    raise PublishError("'file_ids' must be a list of file id strings")
                records = self.publish(count=request.params.get("count"), file_ids=file_ids)
            elif action == "publishable" and request.method == "GET":
                return json_response(200, {"data": {"file_ids": self.publishable()}})
            else:
                return error(404, f"no admin endpoint {request.method} {request.route}")
        except PublishError as err:
            return error(err.status, str(err))
        payload = {
            "published": records,
            "served_files": len(self.emulator.catalogue.files),
            "publishable": len(self.publishable()),
        }
        return json_response(200, {"data": payload})
