"""Hand-made inputs for the cohort tests: slide records, expression rows, embedding files."""

from __future__ import annotations

import csv
import uuid
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from histo_renn_dagster.core.gdc.barcodes import slide_barcode_from_file_name
from histo_renn_dagster.core.gdc.records import SlideFile

SITE_NAMES = {"A2": "Walter Reed", "BH": "University of Pittsburgh", "E2": "Roswell Park"}


def file_id(label: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, label))


def slide(barcode: str, *, site: str | None = "", site_name: str | None = "") -> SlideFile:
    """A slide record for ``barcode`` (e.g. ``TCGA-A2-A25D-01Z-00-DX1``); site from the barcode."""
    parts = barcode.split("-")
    case, code = "-".join(parts[:3]), parts[3][:2]
    code_site = parts[1] if site == "" else site
    name = SITE_NAMES.get(code_site or "") if site_name == "" else site_name
    return SlideFile(
        file_id=file_id(barcode),
        file_name=f"{barcode}.{file_id('img' + barcode).upper()}.svs",
        md5=None,
        size=None,
        state="released",
        case_id=file_id(case),
        case_barcode=case,
        slide_barcode=barcode,
        sample_barcode=f"{case}-{parts[3]}",
        sample_type="Primary Tumor" if code == "01" else "Solid Tissue Normal",
        sample_type_code=code,
        site_code=code_site,
        site_name=name,
        project_id="TCGA-BRCA",
    )


def expression_rows(values: dict[str, object], code: str = "01") -> pd.DataFrame:
    """An expression table with one tumour sample per case: ``{case barcode: MKI67 TPM}``."""
    rows = []
    for case, tpm in values.items():
        rows.append(
            {
                "sample_key": f"{case}-{code}",
                "case_id": file_id(case),
                "case_barcode": case,
                "sample_barcode": f"{case}-{code}A",
                "sample_type_code": code,
                "sample_type": "Primary Tumor",
                "file_id": file_id("rna" + case),
                "file_name": "x.rna_seq.augmented_star_gene_counts.tsv",
                "aliquot_id": None,
                "aliquot_barcode": f"{case}-{code}A-11R-A115-07",
                "rule": "single_candidate",
                "n_candidates": 1,
                "alternatives": "",
                "tpm_MKI67": tpm,
            }
        )
    return pd.DataFrame(rows)


def write_embedding(
    path: Path,
    mean: np.ndarray | list[float],
    *,
    backbone: str = "inception_v3",
    k: int = 3,
) -> Path:
    """An embedding file in the features step's layout (indices, features, mean, attrs)."""
    mean = np.asarray(mean, dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    features = np.repeat(mean[None, :], k, axis=0)
    if k == 0:
        mean = np.full_like(mean, np.nan)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("indices", data=np.arange(k, dtype=np.int64))
        h5.create_dataset("features", data=features.astype(np.float32))
        h5.create_dataset("mean", data=mean)
        h5.attrs["backbone"] = backbone
    return path


def sheet_rows(catalogue) -> list[dict[str, str]]:
    """The sample sheet the GDC portal gives for the fixture cohort's files."""
    rows = []
    for doc in catalogue.files:
        case = doc["cases"][0]
        if doc["data_format"] == "SVS":
            sample = slide_barcode_from_file_name(doc["file_name"]).rsplit("-", 2)[0]
            sample_type = "Primary Tumor"
        else:
            sample = case["samples"][0]["submitter_id"]
            sample_type = case["samples"][0]["sample_type"]
        rows.append(
            {
                "File ID": doc["file_id"],
                "File Name": doc["file_name"],
                "Data Category": doc["data_category"],
                "Data Type": doc["data_type"],
                "Project ID": "TCGA-BRCA",
                "Case ID": case["submitter_id"],
                "Sample ID": sample,
                "Sample Type": sample_type,
            }
        )
    return rows


def write_sheet(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    return path


def gdc_client_dir(catalogue, root: Path, *, flat: bool = False) -> Path:
    """STAR files as gdc-client lays them out (``<file_id>/<file_name>``), or flat."""
    for doc in catalogue.files:
        if doc["data_format"] == "TSV":
            dest = root / doc["file_name"] if flat else root / doc["file_id"] / doc["file_name"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(catalogue.blob(doc["file_id"]).path().read_bytes())
    return root


def write_sites(path: Path, sites: dict[str, str]) -> Path:
    pd.DataFrame({"code": list(sites), "name": list(sites.values())}).to_csv(path, index=False)
    return path
