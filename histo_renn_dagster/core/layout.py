"""Where every file of the data lake lives.

One record maps the DESIGN.md storage layout onto a root directory, so no other module builds
lake paths by hand. GDC file names are data: they only ever appear below a ``<file_id>/`` folder,
after :func:`histo_renn_dagster.core.gdc.paths.safe_file_name` has cleaned them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from histo_renn_dagster.core.errors import UnsafePathError
from histo_renn_dagster.core.gdc.paths import check_file_id


@dataclass(frozen=True)
class LakeLayout:
    """Paths of the data lake below ``root`` (by default ``storage/lake``)."""

    root: Path

    @property
    def slides_dir(self) -> Path:
        return self.root / "slides"

    @property
    def expression_dir(self) -> Path:
        return self.root / "expression"

    @property
    def tables_dir(self) -> Path:
        return self.root / "tables"

    @property
    def manifests_dir(self) -> Path:
        return self.root / "manifests"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def mpp_overrides_path(self) -> Path:
        """Optional ``file_id,mpp`` CSV of per-slide resolution overrides (see core.wsi.mpp)."""
        return self.root / "config" / "mpp_overrides.csv"

    def slide_dir(self, file_id: str) -> Path:
        return self.slides_dir / check_file_id(file_id)

    def tiles_path(self, file_id: str) -> Path:
        return self.root / "tiles" / f"{check_file_id(file_id)}.h5"

    def tile_previews_dir(self, file_id: str) -> Path:
        return self.root / "tiles" / "previews" / check_file_id(file_id)

    def embedding_path(self, file_id: str) -> Path:
        return self.root / "embeddings" / f"{check_file_id(file_id)}.h5"

    def table_path(self, name: str) -> Path:
        if not name.replace("_", "").isalnum():
            raise UnsafePathError(f"table name {name!r} must be alphanumeric with underscores")
        return self.tables_dir / f"{name}.parquet"

    def models_dir(self, minibatch_size: str | int) -> Path:
        m = str(minibatch_size)
        if not m.isdigit():
            raise UnsafePathError(f"minibatch size {m!r} is not a positive integer")
        return self.root / "models" / f"m={m}"
