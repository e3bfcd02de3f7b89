"""The GDC REST client and the GDC file formats.

* ``client`` / ``http`` / ``download``: one hardened session, paged searches, resumable verified
  downloads (``GDCClient``);
* ``filters`` / ``queries``: the filter builder and the cohort's canonical searches;
* ``manifest`` / ``paths``: gdc-client manifests, safe on-disk names;
* ``star_counts``, ``barcodes``, ``records``, ``matching``, ``listing``: STAR-Counts files, TCGA
  barcodes, flat file records and the slide<->RNA matching rule.
"""

from histo_renn_dagster.core.gdc.client import DEFAULT_GDC_URL, GDCClient, token_from_env
from histo_renn_dagster.core.gdc.download import DownloadResult
from histo_renn_dagster.core.gdc.filters import and_, field, or_
from histo_renn_dagster.core.gdc.http import RetryPolicy
from histo_renn_dagster.core.gdc.manifest import ManifestRow, read_manifest, write_manifest
from histo_renn_dagster.core.gdc.paths import file_destination, safe_file_name
from histo_renn_dagster.core.gdc.queries import (
    SearchSpec,
    expression_files_query,
    slide_files_query,
)

__all__ = [
    "DEFAULT_GDC_URL",
    "DownloadResult",
    "GDCClient",
    "ManifestRow",
    "RetryPolicy",
    "SearchSpec",
    "and_",
    "expression_files_query",
    "field",
    "file_destination",
    "or_",
    "read_manifest",
    "safe_file_name",
    "slide_files_query",
    "token_from_env",
    "write_manifest",
]
