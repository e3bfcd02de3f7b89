"""Deterministic ids and draws for the emulated TCGA catalogue.

Every id and every random choice the emulator makes about a real case or file is a pure function
of stable text (a real case id, a barcode, a purpose word), so the same catalogue comes out of
every build, on every machine, in every Python version: no ``random`` global state, no ``hash()``
(salted per process), no dict-order dependence.
"""

from __future__ import annotations

import hashlib
import uuid

import numpy as np

# Changing this namespace changes every generated id: treat it as part of the data format.
_NAMESPACE = "histo-renn-dagster/emulator/tcga"


def _digest(parts: tuple[str, ...]) -> bytes:
    text = "\x1f".join((_NAMESPACE, *parts))
    return hashlib.sha256(text.encode("utf-8")).digest()


def stable_uuid(*parts: str) -> str:
    """A UUID4-shaped id derived from ``parts``.

    GDC ids are random UUID4s; clients may check the version nibble, so ours carry version 4 too,
    while staying reproducible (SHA-256 of the parts rather than os.urandom).
    """
    return str(uuid.UUID(bytes=_digest(parts)[:16], version=4))


def stable_unit(*parts: str) -> float:
    """A number in [0, 1) derived from ``parts``: a per-item coin that never changes."""
    return int.from_bytes(_digest(parts)[:8], "big") / 2.0**64


def stable_rng(*parts: str) -> np.random.Generator:
    """A numpy generator seeded from ``parts`` (PCG64: same stream on every platform)."""
    return np.random.Generator(np.random.PCG64(int.from_bytes(_digest(parts)[:16], "big")))


def stable_order_key(*parts: str) -> str:
    """A sort key that shuffles items reproducibly (hex digest of ``parts``)."""
    return _digest(parts).hex()
