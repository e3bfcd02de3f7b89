"""Dagster resources: thin typed wrappers that hand ``core`` objects to assets.

Environment variables are read when a run asks for a client or a path, never at import.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from histo_renn_dagster.core.gdc.client import DEFAULT_GDC_URL, GDCClient, token_from_env
from histo_renn_dagster.core.gdc.http import RetryPolicy
from histo_renn_dagster.core.layout import LakeLayout

GDC_URL_ENV = "HISTO_RENN_GDC_URL"
LAKE_ENV = "HISTO_RENN_LAKE"


class GDCResource(dg.ConfigurableResource):
    """A GDC API client bound to a base URL: the real GDC or the local emulator.

    The URL comes from ``base_url`` when set, else ``$HISTO_RENN_GDC_URL``, else the real GDC API.
    A token (only needed for controlled data) comes from ``$HISTO_RENN_GDC_TOKEN`` or
    ``$HISTO_RENN_GDC_TOKEN_FILE`` and is never logged.
    """

    base_url: str | None = Field(
        default=None,
        description=f"GDC API base URL; default ${GDC_URL_ENV} or {DEFAULT_GDC_URL}",
    )
    page_size: int = Field(default=500, description="Hits per /files page")
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    max_attempts: int = Field(default=6, description="Attempts per request, retries included")

    def resolved_url(self) -> str:
        return self.base_url or os.environ.get(GDC_URL_ENV) or DEFAULT_GDC_URL

    def client(self) -> GDCClient:
        return GDCClient(
            self.resolved_url(),
            token=token_from_env(os.environ),
            timeout=(self.connect_timeout_s, self.read_timeout_s),
            retry=RetryPolicy(attempts=self.max_attempts),
            page_size=self.page_size,
        )


def default_lake_root() -> Path:
    """``$HISTO_RENN_LAKE``, else ``$DAGSTER_HOME/lake``, else ``./storage/lake``."""
    if os.environ.get(LAKE_ENV):
        return Path(os.environ[LAKE_ENV])
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"]) / "lake"
    return Path("storage") / "lake"


class LayoutResource(dg.ConfigurableResource):
    """Where the data lake lives (see ``core.layout.LakeLayout`` for the paths below it)."""

    root: str | None = Field(
        default=None,
        description=f"Lake root; default ${LAKE_ENV}, else $DAGSTER_HOME/lake, else storage/lake",
    )

    def lake(self) -> LakeLayout:
        return LakeLayout(Path(self.root) if self.root else default_lake_root())


class ComputeResource(dg.ConfigurableResource):
    """Where frozen-CNN assets run: ``auto`` picks the first CUDA device when present, else the CPU.

    Assets using it run in the Dagster pool ``gpu`` (limit 1 by default in storage/dagster.yaml),
    so concurrent runs never share one card. torch is imported only when a run resolves it.
    """

    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:<index>")
    precision: str = Field(
        default="fp32", description="fp32 (reference) | bf16 | fp16 (autocast on the backbone)"
    )
    batch_size: int = Field(default=32, ge=1, description="Tiles per forward pass")
    workers: int = Field(
        default=0, ge=0, description="DataLoader processes decoding JPEG tiles; 0 = in-process"
    )
    deterministic: bool = Field(
        default=False, description="Deterministic kernels (slower; else cuDNN autotuning)"
    )
    decode: str = Field(
        default="host",
        description="Where JPEG tiles are decoded: host (CPU loader) | device (nvJPEG on CUDA)",
    )

    def spec(self):
        from histo_renn_dagster.core.features.compute import ComputeSpec

        return ComputeSpec(
            device=self.device,
            precision=self.precision,
            batch_size=self.batch_size,
            workers=self.workers,
            deterministic=self.deterministic,
            decode=self.decode,
        )

    def resolve(self):
        """The device and settings actually used here (a ``ResolvedCompute``)."""
        from histo_renn_dagster.core.features.compute import resolve_compute

        return resolve_compute(self.spec())
