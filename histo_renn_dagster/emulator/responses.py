"""The answer a route gives: status, headers and a body that is either bytes or streamed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from histo_renn_dagster.emulator.formats import render_json


class Sink(Protocol):
    def write(self, data: bytes) -> Any: ...


@dataclass(frozen=True)
class Response:
    """Status, headers and either a complete body or a writer that streams it (no length)."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    stream: Callable[[Sink], None] | None = field(default=None, compare=False)
    length: int | None = None  # Content-Length of a streamed body, when known


def json_response(
    status: int,
    payload: Any,
    pretty: bool = False,
    headers: Sequence[tuple[str, str]] = (),
) -> Response:
    return Response(
        status,
        (("Content-Type", "application/json"), *headers),
        render_json(payload, pretty),
    )


def error(status: int, message: str, headers: Sequence[tuple[str, str]] = ()) -> Response:
    return json_response(status, {"message": message}, headers=headers)


def timestamp() -> str:
    """``YYYYMMDD_HHMMSS.ffffff`` as in real ``gdc_download_...`` bundle names."""
    return datetime.now().strftime("%Y%m%d_%H%M%S.%f")
