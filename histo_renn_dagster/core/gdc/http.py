"""HTTP transport for the GDC: one ``requests.Session``, timeouts, retries with backoff.

Retried: 429, 5xx, connection errors, read timeouts, bodies cut mid-stream, and 2xx answers that are
not JSON where JSON was asked for (gateways serve HTML error pages with 200; GDC_API.md 10.3).
Never retried: other 4xx (403/404 fail at once with the GDC's ``message``). ``Retry-After`` (seconds
or HTTP-date) is honoured up to ``RetryPolicy.max_delay``. The auth token is sent as
``X-Auth-Token`` only when set and never appears in logs, reprs or exception messages.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import requests
import urllib3.exceptions

from histo_renn_dagster.core.errors import GDCError, GDCHTTPError, GDCResponseError

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Auth-Token"
CHUNK_SIZE = 1 << 20  # download streaming granularity, as gdc-client
_RANGE_RE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_NEXT_PARAM_RE = re.compile(r";\s*[A-Za-z0-9!#$&+.^_`|~-]+\*?\s*=")
USER_AGENT = "histo-renn-dagster GDC client"

# Failures of the wire, not of the request: worth another try.
TRANSIENT_EXCEPTIONS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    # Raised by ``response.raw`` reads, which the download uses directly (see download.py).
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.ReadTimeoutError,
    urllib3.exceptions.DecodeError,
)


def is_retryable_status(status: int) -> bool:
    """429 and every 5xx are transient at the GDC; other statuses are answers."""
    return status == 429 or 500 <= status <= 599


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry.

    ``attempts`` counts every try including the first. Waits grow as ``base_delay * 2**(n-1)``
    capped at ``max_delay``; with ``jitter`` the wait is drawn uniformly from ``[0, that]`` ("full
    jitter") so many clients do not retry in lockstep. ``sleep`` and ``rng`` are injectable so tests
    never wait.
    """

    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0
    jitter: bool = True
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    rng: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be >= 1, got {self.attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError(
                f"RetryPolicy delays must be >= 0, got base {self.base_delay}, max {self.max_delay}"
            )

    def delay(self, retry_number: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (1 = first retry)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        ceiling = min(self.max_delay, self.base_delay * 2 ** max(retry_number - 1, 0))
        return ceiling * self.rng() if self.jitter else ceiling


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent/garbled."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = datetime.now(timezone.utc).timestamp() if now is None else now
    return max(when.timestamp() - current, 0.0)


def error_message(response: requests.Response, limit: int = 300) -> str:
    """The GDC's ``message`` (or ``error``) from an error body, else the body's first characters."""
    try:
        payload = json.loads(response.content)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        for key in ("message", "error"):
            if isinstance(payload.get(key), str):
                return payload[key]
    text = " ".join(response.content[:limit].decode("utf-8", errors="replace").split())
    return text or "(empty body)"


def _latin1_to_utf8(text: str) -> str:
    # http.client decodes header bytes as latin-1; GDC names are UTF-8 on the wire.
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def parse_content_disposition(value: str | None) -> str | None:
    """The file name in a ``Content-Disposition`` header (unquoted, quoted or ``filename*``)."""
    if not value:
        return None
    extended = re.search(r"filename\*\s*=\s*([^']*)'[^']*'([^;]+)", value, re.IGNORECASE)
    if extended:
        with contextlib.suppress(LookupError, UnicodeDecodeError):
            charset = extended.group(1).strip() or "utf-8"
            return urllib.parse.unquote(extended.group(2).strip(), charset, errors="strict")
    match = re.search(r"(?:^|;)\s*filename\s*=\s*", value, re.IGNORECASE)
    if not match:
        return None
    rest = value[match.end() :]
    if rest.startswith('"'):
        chars: list[str] = []
        index = 1
        while index < len(rest) and rest[index] != '"':
            if rest[index] == "\\" and index + 1 < len(rest):
                index += 1
            chars.append(rest[index])
            index += 1
        name = "".join(chars)
    else:
        # The GDC sends the name unquoted; it ends at the next ``; param=`` if there is one.
        following = _NEXT_PARAM_RE.search(rest)
        name = (rest[: following.start()] if following else rest).strip()
    return _latin1_to_utf8(name) or None


def parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """``(start, end, total)`` from ``bytes start-end/total`` (total None for ``*``)."""
    match = _RANGE_RE.match(value or "")
    if not match:
        return None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), int(match.group(2)), total


def body_chunks(response: requests.Response) -> Iterator[bytes]:
    """The body in pieces of at most CHUNK_SIZE, each handed over as soon as it arrives.

    ``iter_content`` keeps reading until it has a full chunk and loses what it holds when the
    connection breaks; ``read1`` returns what one socket read gave, so a resume loses nothing it
    received. Bytes are taken undecoded unless a proxy added a Content-Encoding.
    """
    raw = response.raw
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    decode = encoding not in ("", "identity")
    read = getattr(raw, "read1", None) or raw.read  # urllib3 < 2 has no read1
    while True:
        block = read(CHUNK_SIZE, decode_content=decode)
        if not block:
            return
        yield block


class _TokenSafeSession(requests.Session):
    """requests drops ``Authorization`` on a cross-host redirect but keeps custom headers."""

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response):
        super().rebuild_auth(prepared_request, response)
        if TOKEN_HEADER in prepared_request.headers and self.should_strip_auth(
            response.request.url or "", prepared_request.url or ""
        ):
            del prepared_request.headers[TOKEN_HEADER]


class Transport:
    """One session bound to a base URL; JSON requests with retries, raw streamed GETs without."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        retry: RetryPolicy | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise GDCError(f"GDC base URL must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.session: requests.Session = _TokenSafeSession()
        self.session.headers["User-Agent"] = USER_AGENT
        if token:
            self.session.headers[TOKEN_HEADER] = token

    def __repr__(self) -> str:
        has_token = TOKEN_HEADER in self.session.headers
        return f"Transport({self.base_url!r}, token={'<set>' if has_token else None})"

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def close(self) -> None:
        self.session.close()

    def wait_before_retry(
        self, attempt: int, what: str, reason: str, retry_after: float | None = None
    ) -> None:
        """Log why ``what`` failed and sleep; call only when another attempt follows."""
        wait = self.retry.delay(attempt, retry_after)
        log.warning(
            "GDC %s failed (%s); retry %d of %d in %.2f s",
            what,
            reason,
            attempt,
            self.retry.attempts - 1,
            wait,
        )
        self.retry.sleep(wait)

    def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send a request expecting JSON; retry transient failures; return the decoded body."""
        url = self.url(path)
        what = f"{method} {url}"
        for attempt in range(1, self.retry.attempts + 1):
            last = attempt == self.retry.attempts
            try:
                response = self.session.request(
                    method, url, params=params, json=body, timeout=self.timeout
                )
            except TRANSIENT_EXCEPTIONS as exc:
                reason = f"{type(exc).__name__}: {exc}"
                if last:
                    raise GDCHTTPError(
                        f"{what} failed after {attempt} attempt(s): {reason}", url=url
                    ) from None
                self.wait_before_retry(attempt, what, reason)
                continue
            status = response.status_code
            if is_retryable_status(status):
                reason = f"HTTP {status}: {error_message(response, 120)}"
                if last:
                    raise GDCHTTPError(
                        f"{what} failed after {attempt} attempt(s): {reason}",
                        status=status,
                        url=url,
                    )
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                self.wait_before_retry(attempt, what, reason, retry_after)
                continue
            if not 200 <= status <= 299:
                raise GDCHTTPError(
                    f"{what} answered HTTP {status}: {error_message(response)}",
                    status=status,
                    url=url,
                )
            try:
                return json.loads(response.content)
            except ValueError:
                reason = (
                    f"HTTP {status} body is not JSON (content-type "
                    f"{response.headers.get('Content-Type')!r}, first bytes {response.content[:80]!r})"
                )
                if last:
                    raise GDCResponseError(
                        f"{what} failed after {attempt} attempt(s): {reason}"
                    ) from None
                self.wait_before_retry(attempt, what, reason)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def open_stream(self, path: str, headers: Mapping[str, str] | None = None) -> requests.Response:
        """One streamed GET (no retries here: the caller resumes); the caller closes the response."""
        return self.session.get(
            self.url(path), headers=dict(headers or {}), stream=True, timeout=self.timeout
        )
