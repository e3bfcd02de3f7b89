"""Per-slide HDF5 tile store: self-describing, written atomically, validated on open.

Layout: ``coords`` (N, 2) int64 level-0 x, y; ``tissue_fraction`` (N,) float32; ``jpeg`` (N,)
variable-length uint8, one JPEG-encoded tile_px x tile_px RGB tile each; QC datasets
``qc_pen_fraction``, ``qc_laplacian_var`` (float32) and ``qc_pen``, ``qc_blur`` (bool); geometry
and provenance as file attributes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import h5py
import imagecodecs
import numpy as np

from histo_renn_dagster.core.atomic import new_temp_path, publish_file
from histo_renn_dagster.core.errors import TileStoreError

SCHEMA_VERSION = 1
_JPEG_DTYPE = h5py.vlen_dtype(np.dtype("uint8"))
_COLUMNS: dict[str, tuple[Any, tuple[int, ...]]] = {
    "coords": (np.int64, (2,)),
    "tissue_fraction": (np.float32, ()),
    "qc_pen_fraction": (np.float32, ()),
    "qc_laplacian_var": (np.float32, ()),
    "qc_pen": (np.bool_, ()),
    "qc_blur": (np.bool_, ()),
}


def _dataset(h5: h5py.File, name: str) -> h5py.Dataset:
    """``h5[name]`` typed as the Dataset every name of this layout is (h5py returns a union)."""
    return cast(h5py.Dataset, h5[name])


REQUIRED_ATTRS = ("schema_version", "slide_id", "tile_px", "level0_tile_px", "mpp0", "jpeg_quality")


class TileStoreWriter:
    """Appends tiles to a temp file beside ``path``; ``commit`` renames it into place."""

    def __init__(self, path: str | os.PathLike[str], *, tile_px: int, jpeg_quality: int) -> None:
        self.path = Path(path)
        self.tile_px = tile_px
        self.jpeg_quality = jpeg_quality
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = new_temp_path(self.path)
        self._h5 = h5py.File(self._tmp, "w")
        self.count = 0
        for name, (dtype, tail) in _COLUMNS.items():
            self._h5.create_dataset(
                name, shape=(0, *tail), maxshape=(None, *tail), dtype=dtype, chunks=(1024, *tail)
            )
        self._h5.create_dataset(
            "jpeg", shape=(0,), maxshape=(None,), dtype=_JPEG_DTYPE, chunks=(64,)
        )

    def encode(self, tile: np.ndarray) -> np.ndarray:
        if tile.shape != (self.tile_px, self.tile_px, 3) or tile.dtype != np.uint8:
            raise TileStoreError(
                f"{self.path}: expected a ({self.tile_px}, {self.tile_px}, 3) uint8 tile, "
                f"found {tile.shape} {tile.dtype}"
            )
        return np.frombuffer(imagecodecs.jpeg8_encode(tile, level=self.jpeg_quality), np.uint8)

    def append(
        self, rows: Mapping[str, Sequence[Any] | np.ndarray], jpegs: Sequence[np.ndarray]
    ) -> None:
        """Append a batch: one value per tile in every column of the layout, plus encoded JPEGs."""
        n = len(jpegs)
        if n == 0:
            return
        for name in _COLUMNS:
            values = np.asarray(rows[name], dtype=_COLUMNS[name][0])
            if len(values) != n:
                raise TileStoreError(
                    f"{self.path}: column {name} has {len(values)} rows, expected {n}"
                )
            ds = _dataset(self._h5, name)
            ds.resize(self.count + n, axis=0)
            ds[self.count : self.count + n] = values
        ds = _dataset(self._h5, "jpeg")
        ds.resize(self.count + n, axis=0)
        # Filled element by element and written with write_direct: ``ds[a:b] = objects`` makes
        # h5py turn equal-length (or single) byte arrays into a 2-D block that cannot broadcast.
        blobs = np.empty(n, dtype=_JPEG_DTYPE)
        for i, data in enumerate(jpegs):
            blobs[i] = data
        ds.write_direct(blobs, dest_sel=np.s_[self.count : self.count + n])
        self.count += n

    def written_coords(self) -> np.ndarray:
        """(N, 2) level-0 coords of the tiles appended so far."""
        return _dataset(self._h5, "coords")[: self.count]

    def commit(self, attrs: Mapping[str, Any]) -> Path:
        attrs = {
            **attrs,
            "schema_version": SCHEMA_VERSION,
            "tile_px": self.tile_px,
            "jpeg_quality": self.jpeg_quality,
            "n_tiles": self.count,
        }
        for key, value in attrs.items():
            self._h5.attrs[key] = "" if value is None else value
        self._h5.close()
        return publish_file(self._tmp, self.path)

    def abort(self) -> None:
        try:
            self._h5.close()
        finally:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> TileStoreWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self._tmp.exists():
            self.abort()


class TileStore:
    """Read access to a tile store; shapes and attributes are validated on open."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self._h5 = h5py.File(self.path, "r")
        except (OSError, FileNotFoundError) as exc:
            raise TileStoreError(f"{self.path}: cannot open tile store: {exc}") from exc
        try:
            self._validate()
        except Exception:
            self._h5.close()
            raise
        self.attrs: dict[str, Any] = {
            k: (v.item() if isinstance(v, np.generic) else v) for k, v in self._h5.attrs.items()
        }
        self.coords: np.ndarray = _dataset(self._h5, "coords")[:]
        self.tissue_fraction: np.ndarray = _dataset(self._h5, "tissue_fraction")[:]
        self.tile_px = int(self.attrs["tile_px"])

    def _validate(self) -> None:
        missing = [k for k in (*_COLUMNS, "jpeg") if k not in self._h5]
        missing += [f"attr {a}" for a in REQUIRED_ATTRS if a not in self._h5.attrs]
        if missing:
            raise TileStoreError(f"{self.path}: not a tile store, missing {missing}")
        version = int(cast(Any, self._h5.attrs["schema_version"]))
        if version != SCHEMA_VERSION:
            raise TileStoreError(
                f"{self.path}: schema_version {version}, expected {SCHEMA_VERSION}"
            )
        n = _dataset(self._h5, "coords").shape[0]
        if _dataset(self._h5, "coords").shape != (n, 2):
            raise TileStoreError(
                f"{self.path}: coords shape {_dataset(self._h5, 'coords').shape}, expected (N, 2)"
            )
        for name in (*_COLUMNS, "jpeg"):
            if _dataset(self._h5, name).shape[0] != n:
                raise TileStoreError(
                    f"{self.path}: dataset {name} has {_dataset(self._h5, name).shape[0]} rows, coords has {n}"
                )
        if "n_tiles" in self._h5.attrs and int(cast(Any, self._h5.attrs["n_tiles"])) != n:
            raise TileStoreError(
                f"{self.path}: attr n_tiles={self._h5.attrs['n_tiles']} but {n} rows"
            )

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    def dataset(self, name: str) -> np.ndarray:
        return _dataset(self._h5, name)[:]

    def read_tile(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.path}: tile {index} out of range 0..{len(self) - 1}")
        tile = imagecodecs.jpeg8_decode(bytes(_dataset(self._h5, "jpeg")[index]))
        if tile.shape != (self.tile_px, self.tile_px, 3):
            raise TileStoreError(f"{self.path}: tile {index} decodes to {tile.shape}")
        return tile

    def read_tiles(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = [int(i) for i in indices]
        out = np.empty((len(idx), self.tile_px, self.tile_px, 3), dtype=np.uint8)
        for k, i in enumerate(idx):
            out[k] = self.read_tile(i)
        return out

    def close(self) -> None:
        self._h5.close()

    def __enter__(self) -> TileStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class StoreSummary:
    """What ``verify_tile_store`` found in a readable, self-consistent store."""

    path: Path
    tiles: int
    tile_px: int
    no_tissue: bool  # the tiler flagged the slide as having no tile with enough tissue
    file_bytes: int


def verify_tile_store(
    path: str | os.PathLike[str], *, expected_tiles: int | None = None, sample: int = 3
) -> StoreSummary:
    """Open a store (shapes and attributes are validated), decode ``sample`` tiles spread over it
    and compare the count with ``expected_tiles``; TileStoreError naming the problem otherwise."""
    with TileStore(path) as store:
        n = len(store)
        if expected_tiles is not None and n != expected_tiles:
            raise TileStoreError(f"{store.path}: {n} tiles, expected {expected_tiles}")
        picks = (
            sorted({round(i * (n - 1) / max(1, sample - 1)) for i in range(sample)}) if n else []
        )
        for index in picks:
            try:
                store.read_tile(index)
            except TileStoreError:
                raise
            except Exception as exc:  # a codec error from damaged bytes
                raise TileStoreError(f"{store.path}: tile {index} does not decode: {exc}") from exc
        no_tissue = bool(store.attrs.get("no_tissue", False))
        if n == 0 and not no_tissue:
            raise TileStoreError(f"{store.path}: no tiles and not flagged no_tissue")
        return StoreSummary(
            path=store.path,
            tiles=n,
            tile_px=store.tile_px,
            no_tissue=no_tissue,
            file_bytes=store.path.stat().st_size,
        )
