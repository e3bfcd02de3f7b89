"""Ingest assets: the cohort's slide and STAR-Counts file manifests from the GDC."""

# No `from __future__ import annotations` here: Dagster reads the config and context annotations
# of asset functions at definition time.

import hashlib
from typing import Any

import dagster as dg
import pandas as pd
from pandas.util import hash_pandas_object
from pydantic import Field

from histo_renn_dagster.core.gdc.listing import (
    FileListing,
    list_expression_files,
    list_slide_files,
)
from histo_renn_dagster.core.gdc.manifest import write_manifest
from histo_renn_dagster.defs.partitions import SLIDES_PARTITION
from histo_renn_dagster.defs.resources import GDCResource, LayoutResource


class ManifestConfig(dg.Config):
    project_id: str = Field(default="TCGA-BRCA", description="GDC project to list, e.g. TCGA-BRCA")


def _frame_version(frame: pd.DataFrame) -> dg.DataVersion:
    hashed = hash_pandas_object(frame, index=False).to_numpy()  # type: ignore[operator]
    return dg.DataVersion(hashlib.sha256(hashed.tobytes()).hexdigest()[:32])


def _listing_metadata(listing: FileListing, gdc: GDCResource, manifest_path: str) -> dict[str, Any]:
    frame = listing.frame
    meta: dict[str, Any] = {
        "gdc_data_release": listing.data_release,
        "gdc_url": gdc.resolved_url(),
        "project_id": listing.project_id,
        "files": len(frame),
        "rejected_hits": len(listing.rejected),
        "gdc_manifest": dg.MetadataValue.path(manifest_path),
        "preview": dg.MetadataValue.md(frame.head(10).to_markdown(index=False))
        if not frame.empty
        else "(no files)",
    }
    if listing.rejected:
        meta["rejected_examples"] = dg.MetadataValue.json(
            [{"file_id": f, "reason": r} for f, r in listing.rejected[:20]]
        )
    return meta


def _publish(
    context: dg.AssetExecutionContext,
    listing: FileListing,
    name: str,
    gdc: GDCResource,
    layout: LayoutResource,
    extra: dict[str, Any],
) -> dg.Output[pd.DataFrame]:
    for file_id, reason in listing.rejected:
        context.log.warning(f"skipping GDC hit {file_id}: {reason}")
    path = layout.lake().manifests_dir / f"{name}.txt"
    write_manifest(listing.manifest_rows(), path, data_release=listing.data_release)
    context.log.info(
        f"{len(listing.frame)} files listed for {listing.project_id} "
        f"({listing.data_release}); gdc-client manifest at {path}"
    )
    metadata = {**_listing_metadata(listing, gdc, str(path)), **extra}
    # An unchanged listing keeps its data version, so a nightly refresh that finds nothing new
    # does not make the downstream assets stale.
    return dg.Output(listing.frame, metadata=metadata, data_version=_frame_version(listing.frame))


@dg.asset(group_name="ingest", kinds={"parquet"})
def gdc_slide_manifest(
    context: dg.AssetExecutionContext,
    config: ManifestConfig,
    gdc: GDCResource,
    layout: LayoutResource,
) -> dg.Output[pd.DataFrame]:
    """Every diagnostic slide of the cohort (file id, name, md5, size, case, sample, site).

    Registers one ``slides`` partition per new slide so downstream slide assets can run.
    """
    with gdc.client() as client:
        listing = list_slide_files(client, config.project_id)
    known = set(context.instance.get_dynamic_partitions(SLIDES_PARTITION))
    new_keys = [k for k in listing.frame["file_id"].tolist() if k not in known]
    if new_keys:
        context.instance.add_dynamic_partitions(SLIDES_PARTITION, new_keys)
    context.log.info(f"registered {len(new_keys)} new '{SLIDES_PARTITION}' partitions")
    sites = int(listing.frame["site_code"].nunique()) if not listing.frame.empty else 0
    extra: dict[str, Any] = {"new_partitions": len(new_keys), "sites": sites}
    return _publish(context, listing, "gdc_slide_manifest", gdc, layout, extra)


@dg.asset(group_name="ingest", kinds={"parquet"})
def gdc_expression_manifest(
    context: dg.AssetExecutionContext,
    config: ManifestConfig,
    gdc: GDCResource,
    layout: LayoutResource,
) -> dg.Output[pd.DataFrame]:
    """STAR-Counts gene expression files of the cohort with sample types and aliquots."""
    with gdc.client() as client:
        listing = list_expression_files(client, config.project_id)
    counts = listing.frame["sample_type"].fillna("unknown").value_counts()
    extra: dict[str, Any] = {
        "sample_types": dg.MetadataValue.json({str(k): int(v) for k, v in counts.items()})
    }
    return _publish(context, listing, "gdc_expression_manifest", gdc, layout, extra)
