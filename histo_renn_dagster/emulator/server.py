"""A real threaded HTTP server on 127.0.0.1 that speaks the GDC API subset in GDC_API.md.

``GDCEmulator(catalogue).start()`` returns the base URL; ``.faults`` injects failures (grammar in
``faults.py``); ``.requests`` logs every request (method, path, status, whether an X-Auth-Token
was sent -- never its value).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from histo_renn_dagster.core.errors import GDCQueryError
from histo_renn_dagster.emulator.catalogue import Catalogue
from histo_renn_dagster.emulator.faults import BODY_KINDS, FaultRule, FaultSet
from histo_renn_dagster.emulator.publishing import (
    ADMIN_PREFIX,
    RESERVE_COHORTS,
    Publisher,
    ReserveSource,
)
from histo_renn_dagster.emulator.responses import Response, error
from histo_renn_dagster.emulator.routes import GDCRoutes, Request, id_list, parse_body

log = logging.getLogger(__name__)

_GATEWAY_HTML = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
)
_REASONS = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Timeout"}


@dataclass(frozen=True)
class RequestRecord:
    """One served request. ``token_sent`` says an X-Auth-Token came; its value is never kept."""

    method: str
    path: str  # as sent, with the query string
    route: str  # normalised (no /v0, no query)
    status: int
    token_sent: bool
    range: str | None
    fault: str | None


class _Abort(Exception):
    """Raised by the sink when a drop/truncate fault has written its bytes."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class _FaultySink:
    """Writes a body to the socket, applying a body fault (drop / truncate / corrupt)."""

    def __init__(self, out: Any, rule: FaultRule | None, length: int | None) -> None:
        self.out = out
        self.rule = rule
        self.written = 0
        self.limit: int | None = None
        self.flip_at: int | None = None
        if rule is not None and rule.kind in ("drop", "truncate"):
            if rule.arg is not None:
                self.limit = int(rule.arg)
            else:  # truncate default: half the body (512 bytes if its length is unknown)
                self.limit = length // 2 if length is not None else 512
        if rule is not None and rule.kind == "corrupt":
            offset = int(rule.arg or 0)
            self.flip_at = min(offset, length - 1) if length else offset

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self.flip_at is not None and self.written <= self.flip_at < self.written + len(data):
            at = self.flip_at - self.written
            data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
        if self.limit is not None and self.written + len(data) >= self.limit:
            self.out.write(data[: self.limit - self.written])
            self.written = self.limit
            self.out.flush()
            assert self.rule is not None
            raise _Abort(self.rule.kind)
        self.out.write(data)
        self.written += len(data)


def _header_value(value: str) -> str:
    """Header-safe text: CR/LF removed; non-latin-1 text sent as its UTF-8 bytes."""
    value = value.replace("\r", "").replace("\n", "")
    return value.encode("utf-8").decode("latin-1")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "histo-renn-gdc-emulator"
    timeout = 60  # an idle keep-alive connection is dropped after a minute

    @property
    def _server(self) -> _Server:
        return cast(_Server, self.server)

    def setup(self) -> None:
        super().setup()
        self._server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._server.track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    # -- one request ----------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _parse(self, method: str) -> Request:
        split = urlsplit(self.path)
        route = "/" + "/".join(p for p in unquote(split.path).split("/") if p)
        if route == "/v0" or route.startswith("/v0/"):
            route = route[3:] or "/"
        legacy = route.startswith("/legacy/")
        if legacy:
            route = route[len("/legacy") :]
        query = parse_qs(split.query, keep_blank_values=True)
        params: dict[str, Any] = {k: v[-1] for k, v in query.items()}
        body = self._read_body() if method == "POST" else b""
        ids: tuple[str, ...] = ()
        if method == "POST":
            params.update(parse_body(self.headers.get("Content-Type", ""), body))
            ids = id_list(params.get("ids"))
        headers = {k.lower(): v for k, v in self.headers.items()}
        return Request(method, route, params, ids, headers, legacy)

    def _serve(self, method: str) -> None:
        rule: FaultRule | None = None
        route = self.path
        try:
            request = self._parse(method)
        except (GDCQueryError, ValueError) as err:
            response = error(400, str(err))
        else:
            route = request.route
            rule = self._server.emulator.faults.take(route, ranged="range" in request.headers)
            try:
                response = self._answer(request, rule)
            except Exception:  # a bug must answer 500, not kill the connection silently
                log.exception("emulator failed on %s %s", method, self.path)
                response = error(500, "internal server error (emulator bug; see its log)")
        # Logged before the body goes out, so a client that waits for each answer sees the log
        # in request order.
        self._server.emulator.record(
            RequestRecord(
                method=method,
                path=self.path,
                route=route,
                status=response.status,
                token_sent=bool(self.headers.get("X-Auth-Token", "").strip()),
                range=self.headers.get("Range"),
                fault=str(rule) if rule else None,
            )
        )
        try:
            self._send(response, rule if rule and rule.kind in BODY_KINDS else None)
        except _Abort as abort:
            self._abort(abort.kind)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # mid-stream failure: headers are gone, so the only signal is a close
            log.exception("emulator failed streaming %s %s", method, self.path)
            self.close_connection = True

    def _answer(self, request: Request, rule: FaultRule | None) -> Response:
        if rule is not None and rule.status is not None:
            return self._fault_response(rule)
        if rule is not None and rule.kind == "delay":
            time.sleep(rule.arg or 0)
        if request.route == ADMIN_PREFIX or request.route.startswith(ADMIN_PREFIX + "/"):
            return self._server.emulator.publisher.handle(request)
        ignore_range = rule is not None and rule.kind == "norange"
        return self._server.emulator.routes.handle(request, ignore_range=ignore_range)

    @staticmethod
    def _fault_response(rule: FaultRule) -> Response:
        code = rule.status
        assert code is not None
        if code in _REASONS:
            html = _GATEWAY_HTML.format(code=code, reason=_REASONS[code]).encode()
            return Response(code, (("Content-Type", "text/html"),), html)
        if code == 429:
            return error(429, "Too Many Requests", headers=(("Retry-After", f"{rule.arg or 0:g}"),))
        if code == 500:
            return error(500, "internal server error")
        return error(code, f"injected fault {rule}")

    def _send(self, response: Response, body_fault: FaultRule | None) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, _header_value(value))
        streamed = response.stream is not None
        length = response.length if streamed else len(response.body)
        if length is not None:
            self.send_header("Content-Length", str(length))
        else:
            self.send_header("Connection", "close")  # streamed bundle: the close ends the body
            self.close_connection = True
        self.end_headers()
        if self.command == "HEAD":
            return
        sink = _FaultySink(self.wfile, body_fault, length)
        if response.stream is not None:
            response.stream(sink)
        else:
            sink.write(response.body)
        self.wfile.flush()

    def _abort(self, kind: str) -> None:
        """End the connection mid-body: ``drop`` resets it, ``truncate`` closes it cleanly."""
        self.close_connection = True
        try:
            self.wfile.flush()
            if kind == "drop":
                # SO_LINGER 0 makes close() send RST, which clients see as a connection reset;
                # rfile holds a reference to the socket, so it must close first for the fd to go.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.rfile.close()
                self.connection.close()
            else:
                self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: GDCEmulator) -> None:
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self._conn_lock:
            (self._connections.add if add else self._connections.discard)(conn)

    def close_connections(self) -> None:
        with self._conn_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class GDCEmulator:
    """The emulator for one catalogue. Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        catalogue: Catalogue,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: str | None = None,
        reserve: ReserveSource | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.host = host
        self.port = port
        self.faults = FaultSet(faults)
        self.routes = GDCRoutes(catalogue)
        # Files that can be published while serving (``publishing.py``); a catalogue or a loader.
        self.publisher = Publisher(self, reserve)
        self._requests: list[RequestRecord] = []
        self._log_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the GDC emulator is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the request log, oldest first."""
        with self._log_lock:
            return list(self._requests)

    def record(self, entry: RequestRecord) -> None:
        with self._log_lock:
            self._requests.append(entry)

    def clear_requests(self) -> None:
        with self._log_lock:
            self._requests.clear()

    def serve_catalogue(self, catalogue: Catalogue) -> None:
        """Serve ``catalogue`` from now on; requests in flight finish on the routes they had."""
        routes = GDCRoutes(catalogue)
        self.catalogue, self.routes = catalogue, routes

    def start(self) -> str:
        if self._server is None:
            self._server = _Server((self.host, self.port), self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"gdc-emulator-{self.catalogue.name}",
                daemon=True,
            )
            self._thread.start()
        return self.url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> GDCEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"GDCEmulator({self.catalogue!r}, {where})"


def serve_forever(
    cohort: str,
    *,
    port: int,
    faults: str | None,
    cache_dir: Path,
    announce: Callable[[str], Any] = print,
    host: str = "127.0.0.1",
) -> int:
    """Serve a named cohort until SIGINT/SIGTERM; the base URL is announced first (flushed)."""
    from histo_renn_dagster.emulator.cohorts import load_cohort

    catalogue = load_cohort(cohort, Path(cache_dir))
    reserve_name = RESERVE_COHORTS.get(cohort)
    reserve = (
        None
        if reserve_name is None
        else functools.partial(load_cohort, reserve_name, Path(cache_dir))
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    in_main = threading.current_thread() is threading.main_thread()
    previous = {}
    if in_main:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        with GDCEmulator(
            catalogue, host=host, port=port, faults=faults, reserve=reserve
        ) as emulator:
            announce(emulator.url)
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m histo_renn_dagster.emulator.server --cohort fixture --port 0``."""
    parser = argparse.ArgumentParser(description="Serve a GDC-compatible API on 127.0.0.1.")
    parser.add_argument("--cohort", default="fixture")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--faults", default=None)
    parser.add_argument("--cache-dir", type=Path, default=Path("storage/emulator-cache"))
    args = parser.parse_args(argv)
    return serve_forever(args.cohort, port=args.port, faults=args.faults, cache_dir=args.cache_dir)


if __name__ == "__main__":
    raise SystemExit(main())
