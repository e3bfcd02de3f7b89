"""What the emulator serves: GDC documents plus the bytes behind each file (a ``Blob``).

File documents are stored WITHOUT ``md5sum`` and ``file_size``; those come from the blob, lazily,
so a large generated cohort only materialises the files a request actually touches (returned,
filtered on or sorted by).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from histo_renn_dagster.core.atomic import atomic_path, atomic_write_bytes
from histo_renn_dagster.core.errors import EmulatorError

CHUNK = 1 << 20
LAZY_FILE_FIELDS = ("md5sum", "file_size")

# List members are merged by the first of these keys they carry when cases are derived from files.
_MERGE_KEYS = ("case_id", "sample_id", "portion_id", "analyte_id", "aliquot_id", "slide_id")


@runtime_checkable
class Blob(Protocol):
    """The bytes of one file: size and hex md5 known (maybe lazily), path materialised on demand."""

    @property
    def size(self) -> int: ...

    @property
    def md5(self) -> str: ...

    def path(self) -> Path: ...


def _md5_of_file(path: Path) -> tuple[str, int]:
    digest = hashlib.md5()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


class BytesBlob:
    """In-memory bytes; ``path()`` spills them once to a private temp file (deleted with the blob)."""

    def __init__(self, data: bytes, name: str = "blob") -> None:
        self.data = bytes(data)
        self.name = name
        self._md5 = hashlib.md5(self.data).hexdigest()
        self._path: Path | None = None
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def md5(self) -> str:
        return self._md5

    def path(self) -> Path:
        with self._lock:
            if self._path is None:
                # The temp name never uses self.name: file names in catalogues may be hostile.
                fd, raw = tempfile.mkstemp(prefix="histo-renn-blob-", suffix=".bin")
                with os.fdopen(fd, "wb") as handle:
                    handle.write(self.data)
                self._path = Path(raw)
                weakref.finalize(self, _unlink_quietly, raw)
            return self._path

    def __repr__(self) -> str:
        return f"BytesBlob(name={self.name!r}, size={self.size})"


class GeneratedBlob:
    """Bytes written by ``generate(tmp_path)`` the first time they are needed, cached on disk.

    The file is generated into a temp name beside ``cache_path`` and moved into place with
    ``os.replace``; size and md5 go to the sidecar ``<cache_path>.md5`` (``<md5> <size>``) so a
    restarted emulator does not rehash. A sidecar whose size disagrees with the file is ignored.
    """

    def __init__(self, cache_path: Path, generate: Callable[[Path], None]) -> None:
        self.cache_path = Path(cache_path)
        self.generate = generate
        self._meta: tuple[str, int] | None = None
        self._lock = threading.Lock()

    @property
    def sidecar(self) -> Path:
        return self.cache_path.with_name(self.cache_path.name + ".md5")

    def _read_sidecar(self) -> tuple[str, int] | None:
        try:
            md5, size_text = self.sidecar.read_text().split()
            size = int(size_text)
            if self.cache_path.stat().st_size != size or len(md5) != 32:
                return None
            return md5, size
        except (OSError, ValueError):
            return None

    def _write_sidecar(self, md5: str, size: int) -> None:
        atomic_write_bytes(self.sidecar, f"{md5} {size}\n".encode())

    def _ensure(self) -> tuple[str, int]:
        with self._lock:
            if self._meta is not None and self.cache_path.exists():
                return self._meta
            meta = self._read_sidecar()
            if meta is None:
                if not self.cache_path.exists():
                    self._produce()
                meta = _md5_of_file(self.cache_path)
                self._write_sidecar(*meta)
            self._meta = meta
            return meta

    def _produce(self) -> None:
        with atomic_path(self.cache_path) as tmp:
            self.generate(tmp)
            if not tmp.is_file():
                raise EmulatorError(f"blob generator for {self.cache_path} wrote no file at {tmp}")

    @property
    def size(self) -> int:
        return self._ensure()[1]

    @property
    def md5(self) -> str:
        return self._ensure()[0]

    def path(self) -> Path:
        self._ensure()
        return self.cache_path

    def __repr__(self) -> str:
        return f"GeneratedBlob({str(self.cache_path)!r})"


def iter_blob_bytes(blob: Blob, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Yield the bytes ``[start, end)`` of a blob in chunks of at most 1 MiB."""
    stop = blob.size if end is None else end
    if isinstance(blob, BytesBlob):
        for offset in range(start, stop, CHUNK):
            yield blob.data[offset : min(offset + CHUNK, stop)]
        return
    with blob.path().open("rb") as handle:
        handle.seek(start)
        remaining = stop - start
        while remaining > 0:
            chunk = handle.read(min(CHUNK, remaining))
            if not chunk:
                raise EmulatorError(f"blob {blob!r} ended {remaining} bytes early")
            remaining -= len(chunk)
            yield chunk


def _merge_into(target: dict[str, Any], source: dict[str, Any]) -> None:
    """Deep-merge ``source`` into ``target``; list members with the same id key are merged."""
    for key, value in source.items():
        if key not in target:
            target[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(target[key], dict):
            _merge_into(target[key], value)
        elif isinstance(value, list) and isinstance(target[key], list):
            _merge_lists(target[key], value)


def _member_key(item: Any) -> tuple[str, Any] | None:
    if isinstance(item, dict):
        for key in (*_MERGE_KEYS, "submitter_id"):
            if item.get(key) is not None:
                return key, item[key]
    return None


def _merge_lists(target: list[Any], source: list[Any]) -> None:
    for item in source:
        key = _member_key(item)
        match = next((t for t in target if key is not None and _member_key(t) == key), None)
        if match is not None:
            _merge_into(match, item)
        elif item not in target:
            target.append(copy.deepcopy(item))


def _walk(node: Any, key: str) -> Iterator[Any]:
    """Every value stored under ``key`` anywhere inside ``node``."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key and v is not None:
                yield v
            yield from _walk(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, key)


def _unique(values: Iterable[Any]) -> list[Any]:
    seen: list[Any] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen


_CASE_FILE_KEYS = (
    "file_id",
    "file_name",
    "data_format",
    "data_type",
    "data_category",
    "experimental_strategy",
    "access",
    "state",
    "type",
)


def derive_cases(files: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Case documents merged from the ``cases`` entries of file documents, as /cases shows them."""
    cases: dict[str, dict[str, Any]] = {}
    for doc in files:
        for case in doc.get("cases") or []:
            case_id = case.get("case_id")
            if not case_id:
                raise EmulatorError(f"file {doc.get('file_id')!r} has a case without case_id")
            merged = cases.setdefault(case_id, {"files": []})
            _merge_into(merged, {k: v for k, v in case.items() if k != "files"})
            merged["files"].append({k: doc[k] for k in _CASE_FILE_KEYS if k in doc})
    for case in cases.values():
        samples = case.get("samples") or []
        case["sample_ids"] = _unique(s["sample_id"] for s in samples if s.get("sample_id"))
        case["submitter_sample_ids"] = _unique(
            s["submitter_id"] for s in samples if s.get("submitter_id")
        )
        slides = [x for s in samples for x in _walk(s, "slides")]
        flat_slides = [sl for group in slides for sl in group]
        case["slide_ids"] = _unique(sl["slide_id"] for sl in flat_slides if sl.get("slide_id"))
        case["submitter_slide_ids"] = _unique(
            sl["submitter_id"] for sl in flat_slides if sl.get("submitter_id")
        )
        aliquots = [a for s in samples for group in _walk(s, "aliquots") for a in group]
        case["aliquot_ids"] = _unique(a["aliquot_id"] for a in aliquots if a.get("aliquot_id"))
        case["submitter_aliquot_ids"] = _unique(
            a["submitter_id"] for a in aliquots if a.get("submitter_id")
        )
    return [cases[key] for key in sorted(cases)]


def derive_projects(cases: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Project documents from the ``project`` objects of cases, with a small ``summary``."""
    projects: dict[str, dict[str, Any]] = {}
    for case in cases:
        project = case.get("project") or {}
        project_id = project.get("project_id")
        if not project_id:
            continue
        doc = projects.setdefault(project_id, {"project_id": project_id, "_cases": []})
        _merge_into(doc, project)
        doc["_cases"].append(case)
    out = []
    for project_id in sorted(projects):
        doc = projects[project_id]
        members = doc.pop("_cases")
        files = [f for c in members for f in c.get("files", [])]
        doc["summary"] = {
            "case_count": len(members),
            "file_count": len({f["file_id"] for f in files}),
            "data_categories": _count_by(members, "data_category"),
            "experimental_strategies": _count_by(members, "experimental_strategy"),
        }
        out.append(doc)
    return out


def _count_by(cases: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    groups: dict[str, tuple[set[str], set[str]]] = {}
    for case in cases:
        for f in case.get("files", []):
            if f.get(key) is None:
                continue
            file_ids, case_ids = groups.setdefault(f[key], (set(), set()))
            file_ids.add(f["file_id"])
            case_ids.add(case["case_id"])
    return [
        {"file_count": len(fids), "case_count": len(cids), key: value}
        for value, (fids, cids) in sorted(groups.items())
    ]


class Catalogue:
    """The documents and blobs one emulator serves."""

    def __init__(
        self,
        name: str,
        data_release: str,
        files: list[dict[str, Any]],
        blobs: dict[str, Blob],
        cases: list[dict[str, Any]] | None = None,
        projects: list[dict[str, Any]] | None = None,
    ) -> None:
        self.name = name
        self.data_release = data_release
        self.files = list(files)
        self.blobs = dict(blobs)
        self._by_id: dict[str, dict[str, Any]] = {}
        for doc in self.files:
            file_id = doc.get("file_id")
            if not isinstance(file_id, str) or not file_id:
                raise EmulatorError(f"catalogue {name!r}: a file document has no file_id: {doc!r}")
            if file_id in self._by_id:
                raise EmulatorError(f"catalogue {name!r}: duplicate file_id {file_id}")
            if not isinstance(doc.get("file_name"), str):
                raise EmulatorError(f"catalogue {name!r}: file {file_id} has no file_name")
            present = [k for k in LAZY_FILE_FIELDS if k in doc]
            if present:
                raise EmulatorError(
                    f"catalogue {name!r}: file {file_id} carries {present}; these come from its "
                    "blob and must be left out of the document"
                )
            if file_id not in self.blobs:
                raise EmulatorError(f"catalogue {name!r}: file {file_id} has no blob")
            self._by_id[file_id] = doc
        self.cases = derive_cases(self.files) if cases is None else list(cases)
        self.projects = derive_projects(self.cases) if projects is None else list(projects)

    def file(self, file_id: str) -> dict[str, Any] | None:
        """The stored (bare) document of a file, or None."""
        return self._by_id.get(file_id)

    def blob(self, file_id: str) -> Blob:
        return self.blobs[file_id]

    def complete_file(self, doc: dict[str, Any]) -> dict[str, Any]:
        """A copy of a file document with ``md5sum`` and ``file_size`` taken from its blob."""
        blob = self.blobs[doc["file_id"]]
        return {**doc, "md5sum": blob.md5, "file_size": blob.size}

    def __repr__(self) -> str:
        return f"Catalogue({self.name!r}, files={len(self.files)}, release={self.data_release!r})"


def catalogue_from_payloads(
    payloads: Sequence[tuple[str, str, bytes]],
    *,
    name: str = "inline",
    data_release: str = "Data Release 45.0 - December 04, 2025",
    **document_fields: Any,
) -> Catalogue:
    """A catalogue of open files from ``(file_id, file_name, bytes)``; extra fields go in every doc.

    Meant for tests (hostile names, paging, downloads) that need no biospecimen detail.
    """
    files = []
    blobs: dict[str, Blob] = {}
    for file_id, file_name, data in payloads:
        files.append(
            {
                "file_id": file_id,
                "file_name": file_name,
                "state": "released",
                "access": "open",
                "acl": ["open"],
                "data_format": "TSV",
                "data_type": "Gene Expression Quantification",
                "data_category": "Transcriptome Profiling",
                "version": "1",
                **document_fields,
            }
        )
        blobs[file_id] = BytesBlob(data, file_name)
    return Catalogue(name, data_release, files, blobs)
