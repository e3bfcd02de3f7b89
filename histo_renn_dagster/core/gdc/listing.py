"""The cohort's file listings: every slide / STAR-Counts file of a project as a flat table.

A hit the records module cannot make sense of (no barcode, contradicting case) is rejected with its
reason instead of failing the whole listing: one odd file in 1133 must not stop a cohort, and the
rejects are reported so nobody mistakes them for absent files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from histo_renn_dagster.core.errors import GDCResponseError, HistoRennError
from histo_renn_dagster.core.gdc.client import GDCClient
from histo_renn_dagster.core.gdc.manifest import ManifestRow
from histo_renn_dagster.core.gdc.queries import (
    SearchSpec,
    expression_files_query,
    slide_files_query,
)
from histo_renn_dagster.core.gdc.records import ExpressionFile, SlideFile


@dataclass(frozen=True)
class FileListing:
    """Files of one kind for one project, as the GDC data release ``data_release`` lists them."""

    project_id: str
    data_release: str
    frame: pd.DataFrame
    rejected: tuple[tuple[str, str], ...]
    """``(file_id, reason)`` of hits that could not be turned into records."""

    def manifest_rows(self) -> list[ManifestRow]:
        """gdc-client manifest rows (``id filename md5 size state``) for every listed file."""
        return [
            ManifestRow(
                r["file_id"], r["file_name"], r["md5"], int(r["size"]), r.get("state") or "released"
            )
            for r in self.frame.to_dict("records")
        ]


def _listing(
    client: GDCClient,
    project_id: str,
    spec: SearchSpec,
    parse: Callable[[dict], Any],
    columns: list[str],
) -> FileListing:
    release = client.data_release()
    records, rejected = [], []
    for hit in client.search(spec):
        try:
            records.append(dataclasses.asdict(parse(hit)))
        except HistoRennError as exc:
            rejected.append((str(hit.get("file_id") or hit.get("id")), str(exc)))
    frame = pd.DataFrame.from_records(records, columns=columns)
    if not frame.empty:
        missing = frame.loc[frame["md5"].isna() | frame["size"].isna(), "file_id"].tolist()
        if missing:
            raise GDCResponseError(
                f"{len(missing)} {project_id} files were listed without md5sum/file_size "
                f"(first: {missing[0]}); downloads could not be verified"
            )
        frame = frame.sort_values("file_id", kind="stable").reset_index(drop=True)
        frame["size"] = frame["size"].astype("int64")
    return FileListing(project_id, release, frame, tuple(rejected))


def list_slide_files(client: GDCClient, project_id: str) -> FileListing:
    """Every diagnostic SVS slide of ``project_id``; one row per file, sorted by file id."""
    columns = [f.name for f in dataclasses.fields(SlideFile)]
    return _listing(client, project_id, slide_files_query(project_id), SlideFile.from_hit, columns)


def list_expression_files(client: GDCClient, project_id: str) -> FileListing:
    """Every STAR-Counts file of ``project_id`` with its sample type and aliquot."""
    columns = [f.name for f in dataclasses.fields(ExpressionFile)]
    return _listing(
        client, project_id, expression_files_query(project_id), ExpressionFile.from_hit, columns
    )
