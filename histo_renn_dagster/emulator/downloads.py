"""``/data`` and ``/manifest``: single files with Range, tar(.gz) bundles, manifest TSVs."""

from __future__ import annotations

import io
import re
import tarfile
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, BinaryIO

from histo_renn_dagster.emulator.catalogue import BytesBlob, Catalogue, iter_blob_bytes
from histo_renn_dagster.emulator.formats import render_manifest
from histo_renn_dagster.emulator.responses import Response, Sink, error, json_response, timestamp

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """``(start, end_inclusive)``; ``"unsatisfiable"``; None when absent or not understood."""
    if not header:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None  # multi-range or junk: RFC 9110 lets a server ignore it and send 200
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(size - suffix, 0), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return start, min(end, size - 1)


def manifest_response(docs: Sequence[dict[str, Any]]) -> Response:
    stamp = datetime.now().strftime("%Y-%m-%dT%H_%M_%S.%f")
    return Response(
        200,
        (
            ("Content-Type", "text/tab-separated-values"),
            ("Content-Disposition", f"attachment; filename=gdc_manifest.{stamp}.txt"),
        ),
        render_manifest(docs),
    )


class Downloads:
    """File bytes of one catalogue; controlled files need a token (any token)."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue

    def files_for(self, ids: Sequence[str], token_sent: bool) -> list[dict[str, Any]] | Response:
        if not ids:
            return error(400, "Pass in a list of uuids")
        missing = [i for i in ids if self.catalogue.file(i) is None]
        if missing:
            return error(404, f"{', '.join(missing)} not found in files")
        docs = [self.catalogue.file(i) for i in ids]
        locked = [d["file_id"] for d in docs if d and d.get("access") == "controlled"]
        if locked and not token_sent:
            message = f"controlled-access files need an X-Auth-Token: {', '.join(locked)}"
            return json_response(403, {"message": message, "error": message})
        return [d for d in docs if d is not None]

    def download(
        self, file_id: str, range_header: str | None, *, token_sent: bool, ignore_range: bool
    ) -> Response:
        docs = self.files_for([file_id], token_sent)
        if isinstance(docs, Response):
            return docs
        doc = docs[0]
        blob = self.catalogue.blob(file_id)
        size, md5 = blob.size, blob.md5
        wanted = None if ignore_range else parse_range(range_header, size)
        if isinstance(wanted, str):
            return error(
                416,
                f"range {range_header} not satisfiable for {size} bytes",
                headers=(("Content-Range", f"bytes */{size}"),),
            )
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("Content-Disposition", f"attachment; filename={doc['file_name']}"),
            ("Content-MD5", md5),  # hex digest of the whole file, as gdc-client expects
            ("Accept-Ranges", "bytes"),
        ]
        start, end = (0, size - 1) if wanted is None else wanted
        status = 200
        if wanted is not None:
            status = 206
            headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))

        def stream(sink: Sink) -> None:
            for chunk in iter_blob_bytes(blob, start, end + 1):
                sink.write(chunk)

        return Response(status, tuple(headers), stream=stream, length=end + 1 - start)

    def bundle(self, ids: Sequence[str], *, token_sent: bool, plain: bool) -> Response:
        docs = self.files_for(ids, token_sent)
        if isinstance(docs, Response):
            return docs
        full = [self.catalogue.complete_file(d) for d in docs]
        manifest = render_manifest(full)
        suffix = "tar" if plain else "tar.gz"

        def stream(sink: Sink) -> None:
            mtime = int(time.time())
            with tarfile.open(fileobj=sink, mode="w|" if plain else "w|gz") as tar:  # type: ignore[call-overload]
                info = tarfile.TarInfo("MANIFEST.txt")
                info.size, info.mtime = len(manifest), mtime
                tar.addfile(info, io.BytesIO(manifest))
                for doc in full:
                    blob = self.catalogue.blob(doc["file_id"])
                    info = tarfile.TarInfo(f"{doc['file_id']}/{doc['file_name']}")
                    info.size, info.mtime = blob.size, mtime
                    handle: BinaryIO = (
                        io.BytesIO(blob.data)
                        if isinstance(blob, BytesBlob)
                        else blob.path().open("rb")
                    )
                    with handle:
                        tar.addfile(info, handle)

        headers = (
            ("Content-Type", "application/x-tar" if plain else "application/gzip"),
            ("Content-Disposition", f"attachment; filename=gdc_download_{timestamp()}.{suffix}"),
        )
        return Response(200, headers, stream=stream)

    def manifest_for(self, ids: Sequence[str], *, token_sent: bool) -> Response:
        docs = self.files_for(ids, token_sent)
        if isinstance(docs, Response):
            if docs.status == 403:  # a manifest lists controlled files without downloading them
                docs = [d for d in (self.catalogue.file(i) for i in ids) if d is not None]
            else:
                return docs
        return manifest_response([self.catalogue.complete_file(d) for d in docs])
