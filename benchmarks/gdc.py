"""GDC client benchmarks, measured side by side in one run.

1. Download throughput: the same bytes through the emulator + our client (streamed, md5 computed
   incrementally, written to a .partial file, renamed) vs a plain socket copy (a bare TCP server
   on 127.0.0.1 sending the bytes, the reader writing them to a file). The ratio shows what HTTP,
   verification and atomic writes cost on top of moving bytes.
2. Paging cost of a 1133-file listing (the TCGA-BRCA diagnostic slides) at several page sizes.

Usage: .venv/bin/python benchmarks/gdc.py [--mib 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from histo_renn_dagster.core.gdc.client import GDCClient
from histo_renn_dagster.core.gdc.http import RetryPolicy
from histo_renn_dagster.emulator.catalogue import catalogue_from_payloads
from histo_renn_dagster.emulator.server import GDCEmulator

CHUNK = 1 << 20


def _socket_copy(data_path: Path, out: Path) -> float:
    """Seconds to move the file over a loopback TCP socket into ``out`` (reads from disk too)."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def serve() -> None:
        conn, _ = srv.accept()
        with conn, open(data_path, "rb") as f:
            conn.sendfile(f)
        srv.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s, open(out, "wb") as f:
        while chunk := s.recv(CHUNK):
            f.write(chunk)
    elapsed = time.perf_counter() - t0
    thread.join()
    return elapsed


def _client_download(url: str, file_id: str, dest: Path, md5: str, size: int) -> float:
    with GDCClient(url, retry=RetryPolicy(attempts=1)) as client:
        t0 = time.perf_counter()
        result = client.download(file_id, dest, md5=md5, size=size)
        elapsed = time.perf_counter() - t0
    assert not result.skipped and result.md5 == md5
    return elapsed


def bench_download(mib: int, repeats: int, work: Path) -> None:
    data = os.urandom(mib << 20)
    md5 = hashlib.md5(data).hexdigest()
    file_id = str(uuid.uuid4())
    catalogue = catalogue_from_payloads([(file_id, "bench.svs", data)], name="bench")
    blob_path = catalogue.blob(file_id).path()  # the emulator serves from this file too
    del data
    socket_s, client_s = [], []
    with GDCEmulator(catalogue) as emulator:
        for i in range(repeats):
            socket_s.append(_socket_copy(blob_path, work / f"sock{i}.bin"))
            (work / f"sock{i}.bin").unlink()
            dest = work / f"dl{i}"
            client_s.append(_client_download(emulator.url, file_id, dest, md5, mib << 20))
    s, c = statistics.median(socket_s), statistics.median(client_s)
    print(f"\n## download of {mib} MiB over 127.0.0.1 (median of {repeats})")
    print(f"{'path':<38}{'seconds':>10}{'MiB/s':>10}")
    print(f"{'plain socket copy to file':<38}{s:>10.3f}{mib / s:>10.1f}")
    print(f"{'emulator + GDCClient.download':<38}{c:>10.3f}{mib / c:>10.1f}")
    print(f"client throughput / socket throughput = {s / c:.2f}")


def bench_paging(n_files: int, page_sizes: list[int]) -> None:
    payloads = [(str(uuid.UUID(int=i + 1)), f"slide{i:05d}.svs", b"x") for i in range(n_files)]
    catalogue = catalogue_from_payloads(payloads, name="paging")
    print(f"\n## paging a {n_files}-file listing (POST /files, fields file_id,file_name,md5sum)")
    print(f"{'page size':>10}{'requests':>10}{'seconds':>10}{'ms/request':>12}{'hits/s':>10}")
    base = None
    with GDCEmulator(catalogue) as emulator, GDCClient(emulator.url) as client:
        # Warm-up: the emulator computes each file's md5 lazily on first listing; keep that cost
        # out of the first measured row.
        list(client.search("files", fields="file_id,md5sum", page_size=max(page_sizes)))
        for size in page_sizes:
            emulator.clear_requests()
            t0 = time.perf_counter()
            hits = list(client.search("files", fields="file_id,file_name,md5sum", page_size=size))
            elapsed = time.perf_counter() - t0
            assert len(hits) == n_files
            requests = len(emulator.requests)
            base = base or elapsed
            print(
                f"{size:>10}{requests:>10}{elapsed:>10.3f}{1000 * elapsed / requests:>12.1f}"
                f"{n_files / elapsed:>10.0f}"
            )
    print(f"(first row is the reference; {page_sizes[0]}-hit pages cost {base:.3f} s in all)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="download size in MiB")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--files", type=int, default=1133, help="listing size for paging")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="histo-renn-bench-") as tmp:
        bench_download(args.mib, args.repeats, Path(tmp))
    bench_paging(args.files, [100, 500, 1000, 2000])


if __name__ == "__main__":
    main()
