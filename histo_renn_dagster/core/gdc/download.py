"""Resumable, verified single-file downloads from ``GET /data/{file_id}`` (GDC_API.md 10 and 16).

Bytes go to ``<dest>/<file_id>/<name>.partial``; a retry or a rerun resumes with
``Range: bytes=<n>-`` (206 appends, 200 restarts from zero). Size then md5 are checked before an
atomic rename to the final name, and the verified md5 is cached in ``<name>.md5`` so a rerun skips a
completed file without touching the network. HEAD is never used (the GDC answers it with 400).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from histo_renn_dagster.core.atomic import atomic_write_bytes
from histo_renn_dagster.core.errors import ChecksumError, DownloadError, GDCHTTPError
from histo_renn_dagster.core.gdc.http import (
    CHUNK_SIZE,
    TRANSIENT_EXCEPTIONS,
    Transport,
    body_chunks,
    error_message,
    is_retryable_status,
    parse_content_disposition,
    parse_content_range,
    parse_retry_after,
)
from histo_renn_dagster.core.gdc.paths import (
    PARTIAL_SUFFIX,
    check_file_id,
    file_destination,
)

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".md5"
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
_UNSATISFIED_RE = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.IGNORECASE)

MetadataLookup = Callable[[str], Mapping[str, Any]]


@dataclass(frozen=True)
class DownloadResult:
    """A verified file on disk; ``skipped`` when it was already complete, ``attempts`` GETs made."""

    file_id: str
    path: Path
    size: int
    md5: str
    skipped: bool
    attempts: int


def _hash_file(path: Path, hasher: Any | None = None) -> Any:
    digest = hashlib.md5() if hasher is None else hasher
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(block)
    return digest


def _sidecar(final: Path) -> Path:
    return final.with_name(final.name + SIDECAR_SUFFIX)


def _write_sidecar(final: Path, md5: str) -> None:
    stat = final.stat()
    record = {
        "file_name": final.name,
        "md5": md5,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
    }
    atomic_write_bytes(_sidecar(final), (json.dumps(record) + "\n").encode("utf-8"))


def _read_sidecar(sidecar: Path, final: Path) -> str | None:
    """The cached md5 if the sidecar describes ``final`` exactly as it is now (size and mtime)."""
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
        stat = final.stat()
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("file_name") != final.name:
        return None
    if record.get("size") != stat.st_size or record.get("mtime_ns") != stat.st_mtime_ns:
        return None
    md5 = record.get("md5")
    return md5 if isinstance(md5, str) and _MD5_RE.match(md5) else None


class _Retry(Exception):
    """One attempt failed in a way another attempt may fix."""

    def __init__(
        self,
        reason: str,
        *,
        restart: bool = False,
        retry_after: float | None = None,
        mismatch: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.restart = restart  # the partial bytes are wrong: start again from byte 0
        self.retry_after = retry_after
        self.mismatch = mismatch  # (expected, actual) for size/md5 failures


def _check_md5(md5: str | None, file_id: str) -> str | None:
    if md5 is None or md5 == "":
        return None
    normalised = md5.strip().lower()
    if not _MD5_RE.match(normalised):
        raise DownloadError(
            f"expected md5 of {file_id} is not 32 hex digits: {md5!r}", file_id=file_id
        )
    return normalised


class _Download:
    """State of one file's download across attempts."""

    def __init__(
        self,
        transport: Transport,
        file_id: str,
        dest_dir: Path,
        md5: str | None,
        size: int | None,
        metadata: MetadataLookup,
    ) -> None:
        self.transport = transport
        self.file_id = check_file_id(file_id)
        self.folder = dest_dir / file_id
        self.md5 = _check_md5(md5, file_id)
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise DownloadError(f"expected size of {file_id} must be an int >= 0, got {size!r}")
        self.size = size
        self._metadata = metadata
        self._meta_cache: Mapping[str, Any] | None = None
        self.path = f"data/{file_id}"

    # -- files already on disk ---------------------------------------------------------------

    def _entries(self) -> dict[str, Path]:
        if not self.folder.is_dir():
            return {}
        return {p.name: p for p in self.folder.iterdir() if p.is_file()}

    def completed(self) -> DownloadResult | None:
        """A verified final file for this id, found without any network request."""
        entries = self._entries()
        sidecar_of = {n[: -len(SIDECAR_SUFFIX)]: n for n in entries if n.endswith(SIDECAR_SUFFIX)}
        cached_md5: dict[str, str] = {}
        for name in sorted(sidecar_of.keys() & entries.keys()):
            final = entries[name]
            cached = _read_sidecar(entries[sidecar_of[name]], final)
            if cached is None:
                continue  # stale or foreign sidecar: the file may still be rehashed below
            cached_md5[name] = cached
            if self.md5 in (None, cached) and self.size in (None, final.stat().st_size):
                return DownloadResult(self.file_id, final, final.stat().st_size, cached, True, 0)
        if self.md5 is None:
            return None  # nothing to compare an unverified file against
        sidecar_files = {sidecar_of[n] for n in sidecar_of if n in entries}
        for name, final in sorted(entries.items()):
            if name.endswith(PARTIAL_SUFFIX) or name in sidecar_files or name in cached_md5:
                continue
            if self.size is not None and final.stat().st_size != self.size:
                continue
            if _hash_file(final).hexdigest() == self.md5:
                _write_sidecar(final, self.md5)
                return DownloadResult(self.file_id, final, final.stat().st_size, self.md5, True, 0)
        return None

    def partials(self) -> list[Path]:
        return sorted(p for n, p in self._entries().items() if n.endswith(PARTIAL_SUFFIX))

    def discard_partials(self) -> None:
        for partial in self.partials():
            partial.unlink(missing_ok=True)

    # -- metadata fallback -------------------------------------------------------------------

    def metadata(self) -> Mapping[str, Any]:
        if self._meta_cache is None:
            self._meta_cache = self._metadata(self.file_id)
        return self._meta_cache

    def _file_name(self, response: requests.Response) -> str:
        name = parse_content_disposition(response.headers.get("Content-Disposition"))
        if name is None:
            name = self.metadata().get("file_name")
        if not isinstance(name, str) or not name:
            raise DownloadError(
                f"no file name for {self.file_id}: no Content-Disposition and no file_name in "
                "/files metadata",
                file_id=self.file_id,
            )
        return name

    def _expected_md5(self, header_md5: str | None) -> str:
        header = (header_md5 or "").strip().lower()
        header = header if _MD5_RE.match(header) else None
        if self.md5 is not None:
            if header is not None and header != self.md5:
                log.warning(
                    "file %s: Content-MD5 %s differs from the expected md5 %s; checking the latter",
                    self.file_id,
                    header,
                    self.md5,
                )
            return self.md5
        if header is not None:
            return header
        from_meta = _check_md5(self.metadata().get("md5sum"), self.file_id)
        if from_meta is None:
            raise DownloadError(
                f"cannot verify {self.file_id}: no md5 given, no Content-MD5 header and no md5sum "
                "in /files metadata",
                file_id=self.file_id,
            )
        return from_meta

    # -- one attempt ---------------------------------------------------------------------------

    def attempt(self) -> DownloadResult:
        existing = self.partials()
        partial = max(existing, key=lambda p: p.stat().st_size) if existing else None
        offset = partial.stat().st_size if partial else 0
        # Identity: byte offsets and sizes must be those of the file, not of a gzip of it.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        with contextlib.closing(self.transport.open_stream(self.path, headers)) as response:
            status = response.status_code
            if status == 416 and partial is not None:
                return self._unsatisfiable(response, partial, offset)
            if is_retryable_status(status):
                raise _Retry(
                    f"HTTP {status}: {error_message(response, 120)}",
                    retry_after=parse_retry_after(response.headers.get("Retry-After")),
                )
            if status not in (200, 206):
                url = self.transport.url(self.path)
                raise GDCHTTPError(
                    f"GET {url} (file {self.file_id}) answered HTTP {status}: "
                    f"{error_message(response)}",
                    status=status,
                    url=url,
                )
            final = file_destination(self.folder.parent, self.file_id, self._file_name(response))
            target = final.with_name(final.name + PARTIAL_SUFFIX)
            hasher = hashlib.md5()
            if status == 206:
                content_range = parse_content_range(response.headers.get("Content-Range"))
                if content_range is None or content_range[0] != offset:
                    raise _Retry(
                        f"206 with Content-Range {response.headers.get('Content-Range')!r} "
                        f"does not start at the requested byte {offset}",
                        restart=True,
                    )
                total = content_range[2]
            else:
                if offset:
                    log.info("file %s: server ignored Range; restarting from byte 0", self.file_id)
                offset = 0
                length = response.headers.get("Content-Length", "")
                encoded = response.headers.get("Content-Encoding", "identity") != "identity"
                total = int(length) if length.isdigit() and not encoded else None
            keep = partial if offset else None
            for other in existing:
                if other not in (keep, target):
                    other.unlink(missing_ok=True)
            if offset:
                assert partial is not None
                if partial != target:
                    os.replace(partial, target)  # the server renamed the file; same bytes
                _hash_file(target, hasher)
            if total is not None and self.size is not None and total != self.size:
                raise _Retry(
                    f"server announces {total} bytes, expected {self.size}",
                    restart=True,
                    mismatch=(f"{self.size} bytes", f"{total} bytes"),
                )
            have = self._stream(response, target, offset, total, hasher)
            return self._finish(target, final, have, hasher.hexdigest(), response)

    def _stream(
        self, response: requests.Response, target: Path, offset: int, total: int | None, hasher: Any
    ) -> int:
        limit = total if total is not None else self.size
        self.folder.mkdir(parents=True, exist_ok=True)
        have = offset
        with target.open("ab" if offset else "wb", buffering=CHUNK_SIZE) as out:
            for chunk in body_chunks(response):
                have += len(chunk)
                if limit is not None and have > limit:
                    raise _Retry(
                        f"body is longer than {limit} bytes",
                        restart=True,
                        mismatch=(f"{limit} bytes", f"more than {limit} bytes"),
                    )
                out.write(chunk)
                hasher.update(chunk)
            out.flush()
            os.fsync(out.fileno())
        if limit is not None and have < limit:
            # Keep the partial: the next attempt asks for the rest with Range.
            raise _Retry(f"body ended at byte {have} of {limit}")
        return have

    def _unsatisfiable(
        self, response: requests.Response, partial: Path, offset: int
    ) -> DownloadResult:
        match = _UNSATISFIED_RE.match(response.headers.get("Content-Range", ""))
        total = int(match.group(1)) if match else None
        if total != offset:
            raise _Retry(f"416 for Range bytes={offset}- (file has {total} bytes)", restart=True)
        # The partial already holds every byte: a previous run stopped just before the rename.
        final = partial.with_name(partial.name[: -len(PARTIAL_SUFFIX)])
        return self._finish(partial, final, offset, _hash_file(partial).hexdigest(), response)

    def _finish(
        self, partial: Path, final: Path, have: int, actual: str, response: requests.Response
    ) -> DownloadResult:
        if self.size is not None and have != self.size:
            raise _Retry(
                f"got {have} bytes, expected {self.size}",
                restart=True,
                mismatch=(f"{self.size} bytes", f"{have} bytes"),
            )
        expected = self._expected_md5(response.headers.get("Content-MD5"))
        if actual != expected:
            raise _Retry(
                f"md5 {actual} does not match expected {expected}",
                restart=True,
                mismatch=(expected, actual),
            )
        _sidecar(final).unlink(missing_ok=True)
        os.replace(partial, final)
        _write_sidecar(final, actual)
        return DownloadResult(self.file_id, final, have, actual, False, 0)


def download_file(
    transport: Transport,
    file_id: str,
    dest_dir: str | os.PathLike[str],
    *,
    md5: str | None = None,
    size: int | None = None,
    metadata: MetadataLookup,
) -> DownloadResult:
    """Download ``file_id`` into ``dest_dir/<file_id>/<file name>``, resuming and verifying.

    ``metadata(file_id)`` (``/files/{id}``) is consulted only when the response lacks a
    Content-Disposition name or no md5 is known. Raises ChecksumError (file id, expected, actual)
    when the bytes never verify within the retry budget, DownloadError for other exhausted
    retries, GDCHTTPError at once for a non-retryable status, UnsafePathError for a hostile id/name.
    """
    job = _Download(transport, file_id, Path(dest_dir), md5, size, metadata)
    done = job.completed()
    if done is not None:
        log.info("file %s already complete at %s; skipped", file_id, done.path)
        return done
    budget = transport.retry.attempts
    what = f"download of {file_id}"
    failure: _Retry | None = None
    for attempt in range(1, budget + 1):
        try:
            return dataclasses.replace(job.attempt(), attempts=attempt)
        except TRANSIENT_EXCEPTIONS as exc:
            failure = _Retry(f"{type(exc).__name__}: {exc}")
        except _Retry as exc:
            failure = exc
        if failure.restart:
            job.discard_partials()
        if attempt < budget:
            transport.wait_before_retry(attempt, what, failure.reason, failure.retry_after)
    assert failure is not None
    if failure.mismatch is not None:
        expected, actual = failure.mismatch
        raise ChecksumError(
            f"file {file_id}: verification failed after {budget} attempt(s): expected {expected}, "
            f"got {actual}",
            file_id=file_id,
        )
    raise DownloadError(
        f"file {file_id}: download failed after {budget} attempt(s): {failure.reason}",
        file_id=file_id,
    )
