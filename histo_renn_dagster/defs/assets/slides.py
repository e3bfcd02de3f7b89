"""Per-slide assets, one ``slides`` partition (GDC file id) each."""

# No `from __future__ import annotations` here: Dagster reads the config and context annotations
# of asset functions at definition time.

import dagster as dg
import pandas as pd

from histo_renn_dagster.defs.partitions import slides_partitions
from histo_renn_dagster.defs.resources import GDCResource, LayoutResource

# Downloads fail transiently (resets, 5xx bursts beyond the client's own retries); a later attempt
# resumes from the .partial file, so retrying the step is cheap.
DOWNLOAD_RETRY = dg.RetryPolicy(max_retries=2, delay=15, backoff=dg.Backoff.EXPONENTIAL)


def manifest_row(manifest: pd.DataFrame, file_id: str) -> pd.Series:
    rows = manifest.loc[manifest["file_id"] == file_id]
    if rows.empty:
        raise dg.Failure(
            f"slide {file_id} is not in gdc_slide_manifest: rematerialize the manifest or drop "
            "the stale partition"
        )
    return rows.iloc[0]


@dg.asset(
    partitions_def=slides_partitions,
    group_name="slides",
    kinds={"svs"},
    retry_policy=DOWNLOAD_RETRY,
    ins={"gdc_slide_manifest": dg.AssetIn()},
)
def slide_file(
    context: dg.AssetExecutionContext,
    gdc_slide_manifest: pd.DataFrame,
    gdc: GDCResource,
    layout: LayoutResource,
) -> dg.MaterializeResult:
    """The downloaded, md5-verified slide at ``lake/slides/<file_id>/<file_name>``."""
    file_id = context.partition_key
    row = manifest_row(gdc_slide_manifest, file_id)
    context.log.info(f"downloading {row['file_name']} ({int(row['size']) / 2**20:.1f} MiB)")
    with gdc.client() as client:
        result = client.download(
            file_id, layout.lake().slides_dir, md5=row["md5"], size=int(row["size"])
        )
    context.log.info(
        f"{'already complete' if result.skipped else 'downloaded'}: {result.path} "
        f"({result.attempts} request(s))"
    )
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(result.path)),
            "file_name": str(row["file_name"]),
            "size_bytes": result.size,
            "md5": result.md5,
            "case": str(row["case_barcode"]),
            "site": str(row["site_code"]),
            "skipped_existing": result.skipped,
            "requests": result.attempts,
        }
    )
