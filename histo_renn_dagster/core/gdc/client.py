"""``GDCClient``: status, paged searches, single-file metadata and verified downloads.

The same code path talks to the real GDC (``DEFAULT_GDC_URL``) and to the local emulator.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from histo_renn_dagster.core.errors import GDCError, GDCFilterError, GDCResponseError
from histo_renn_dagster.core.gdc.download import DownloadResult, download_file
from histo_renn_dagster.core.gdc.filters import Combination, Comparison, FilterNode
from histo_renn_dagster.core.gdc.http import TOKEN_HEADER, RetryPolicy, Transport
from histo_renn_dagster.core.gdc.paths import check_file_id
from histo_renn_dagster.core.gdc.queries import SearchSpec

DEFAULT_GDC_URL = "https://api.gdc.cancer.gov"
TOKEN_ENV = "HISTO_RENN_GDC_TOKEN"
TOKEN_FILE_ENV = "HISTO_RENN_GDC_TOKEN_FILE"


def token_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The GDC token from ``HISTO_RENN_GDC_TOKEN`` or the file named by ``HISTO_RENN_GDC_TOKEN_FILE``.

    Whitespace around the token (the portal's file ends with a newline) is stripped. None when
    neither is set. Errors never quote the token.
    """
    env = os.environ if environ is None else environ
    direct = env.get(TOKEN_ENV, "").strip()
    if direct:
        token, source = direct, TOKEN_ENV
    elif env.get(TOKEN_FILE_ENV, "").strip():
        path = Path(env[TOKEN_FILE_ENV].strip()).expanduser()
        try:
            token = path.read_bytes().decode("utf-8", errors="replace").strip()
        except FileNotFoundError:
            raise GDCError(f"{TOKEN_FILE_ENV} names {path}, which does not exist") from None
        except OSError as exc:
            raise GDCError(
                f"{TOKEN_FILE_ENV} names {path}, which cannot be read: {exc.strerror}"
            ) from None
        if not token:
            raise GDCError(f"{TOKEN_FILE_ENV} names {path}, which is empty")
        source = f"{TOKEN_FILE_ENV} ({path})"
    else:
        return None
    # Non-ASCII breaks GDC auth; whitespace/control characters would corrupt the header.
    if not token.isascii() or any(ch.isspace() or not ch.isprintable() for ch in token):
        raise GDCError(
            f"the GDC token from {source} contains non-ASCII, whitespace or control characters"
        )
    return token


def _join(value: str | Sequence[str] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    return ",".join(value) or None


def _filters_json(filters: FilterNode | Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if filters is None or isinstance(filters, Mapping):
        return filters
    if isinstance(filters, (Comparison, Combination)):
        return filters.to_dict()
    raise GDCFilterError(f"filters must be a filter node or a dict, got {type(filters).__name__}")


def _page(payload: Any, where: str) -> tuple[list[dict[str, Any]], int, int]:
    """``(hits, count, total)`` of one search envelope, or GDCResponseError naming what is wrong."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        raise GDCResponseError(f"{where}: response has no 'data' object: {str(payload)[:200]}")
    hits, pagination = data.get("hits"), data.get("pagination")
    if not isinstance(hits, list) or not isinstance(pagination, dict):
        raise GDCResponseError(
            f"{where}: 'data' lacks a 'hits' list or a 'pagination' object (keys {sorted(data)})"
        )
    try:
        count, total = int(pagination["count"]), int(pagination["total"])
    except (KeyError, TypeError, ValueError):
        raise GDCResponseError(
            f"{where}: pagination lacks integer 'count'/'total': {pagination}"
        ) from None
    if count != len(hits):
        raise GDCResponseError(f"{where}: pagination.count is {count} but {len(hits)} hits came")
    if not all(isinstance(hit, dict) for hit in hits):
        raise GDCResponseError(f"{where}: a hit is not a JSON object")
    return hits, count, total


class GDCClient:
    """Client of the GDC REST API (or the emulator at ``base_url``); one session per client."""

    def __init__(
        self,
        base_url: str = DEFAULT_GDC_URL,
        *,
        token: str | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        retry: RetryPolicy | None = None,
        page_size: int = 500,
    ) -> None:
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise GDCError(f"page_size must be a positive int, got {page_size!r}")
        self.page_size = page_size
        self._transport = Transport(base_url, token=token, timeout=timeout, retry=retry)

    def __repr__(self) -> str:
        token = "<set>" if TOKEN_HEADER in self._transport.session.headers else None
        return f"GDCClient({self.base_url!r}, token={token}, page_size={self.page_size})"

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    @property
    def retry(self) -> RetryPolicy:
        return self._transport.retry

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> GDCClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- metadata ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """``GET /status`` (a bare object, no ``data`` envelope)."""
        payload = self._transport.request_json("GET", "status")
        if not isinstance(payload, dict):
            raise GDCResponseError(f"GET {self._transport.url('status')}: expected a JSON object")
        return payload

    def data_release(self) -> str:
        """The data release string, e.g. ``"Data Release 45.0 - December 04, 2025"``."""
        status = self.status()
        for key in ("data_release", "tag"):  # ``tag`` is all the old /status shape has
            value = status.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
        raise GDCResponseError(
            f"GET {self._transport.url('status')}: neither 'data_release' nor 'tag' in {sorted(status)}"
        )

    def file(self, file_id: str, *, fields: str | Sequence[str] | None = None) -> dict[str, Any]:
        """``GET /files/{file_id}``: the file's metadata document."""
        path = f"files/{check_file_id(file_id)}"
        params = {"fields": _join(fields)} if _join(fields) else None
        payload = self._transport.request_json("GET", path, params=params)
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, dict):
            raise GDCResponseError(
                f"GET {self._transport.url(path)}: response has no 'data' object"
            )
        return data

    def search(
        self,
        spec_or_endpoint: SearchSpec | str,
        *,
        filters: FilterNode | Mapping[str, Any] | None = None,
        fields: str | Sequence[str] | None = None,
        expand: str | Sequence[str] | None = None,
        sort: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every hit of a search (POST, paged with ``size``/``from``), each exactly once.

        A ``SearchSpec`` supplies endpoint, filters, fields and sort; keyword arguments override
        them. Raises GDCResponseError if ``total`` changes between pages, a hit repeats, or a page
        comes back empty before ``total`` hits arrived.
        """
        if isinstance(spec_or_endpoint, SearchSpec):
            endpoint = spec_or_endpoint.endpoint
            filters = spec_or_endpoint.filters if filters is None else filters
            fields = spec_or_endpoint.fields if fields is None else fields
            sort = spec_or_endpoint.sort if sort is None else sort
        else:
            endpoint = spec_or_endpoint
        endpoint = endpoint.strip("/")
        if not endpoint or "/" in endpoint:
            raise GDCFilterError(
                f"search endpoint must be one name such as 'files', got {endpoint!r}"
            )
        size = self.page_size if page_size is None else page_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise GDCFilterError(f"page_size must be a positive int, got {size!r}")
        body: dict[str, Any] = {"format": "JSON", "size": size}
        optional = {
            "filters": _filters_json(filters),
            "fields": _join(fields),
            "expand": _join(expand),
            "sort": sort,
        }
        body.update({key: value for key, value in optional.items() if value})
        return self._pages(endpoint, body)

    def _pages(self, endpoint: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        url = self._transport.url(endpoint)
        offset, first_total = 0, None
        seen: set[str] = set()
        while True:
            where = f"POST {url} (from={offset})"
            payload = self._transport.request_json("POST", endpoint, body={**body, "from": offset})
            hits, count, total = _page(payload, where)
            if first_total is None:
                first_total = total
            elif total != first_total:
                raise GDCResponseError(
                    f"{where}: total changed from {first_total} to {total} while paging; "
                    "the index changed under the query, rerun it"
                )
            for hit in hits:
                key = hit.get("id", hit.get("file_id"))
                if key is not None:
                    if str(key) in seen:
                        raise GDCResponseError(f"{where}: hit {key} was already returned")
                    seen.add(str(key))
            yield from hits
            offset += count
            if offset >= total:
                return
            if count == 0:
                raise GDCResponseError(
                    f"{where}: empty page after {offset} of {total} hits; results would be incomplete"
                )

    # -- data ----------------------------------------------------------------------------------

    def download(
        self,
        file_id: str,
        dest_dir: str | os.PathLike[str],
        *,
        md5: str | None = None,
        size: int | None = None,
    ) -> DownloadResult:
        """Download one file to ``dest_dir/<file_id>/<file name>`` (see ``download.download_file``)."""
        return download_file(
            self._transport, file_id, dest_dir, md5=md5, size=size, metadata=self.file
        )
