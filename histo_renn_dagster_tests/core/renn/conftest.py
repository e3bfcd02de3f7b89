"""Fixtures of the RENN tests: one torch thread (tiny ops; the machine is shared) and the real
TCGA-BRCA slide- and case-level tables joined on the case barcode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tcga_slide_table(shared: Path) -> pd.DataFrame:
    """One row per diagnostic slide with an MKI67 value and a site: y = log TPM."""
    folder = shared / "tcga_brca"
    slides = pd.read_csv(folder / "diagnostic_slides.csv")
    expression = pd.read_csv(folder / "mki67_tpm_unstranded.csv")
    table = slides.merge(
        expression[["submitter_id", "MKI67_tpm_unst"]], on="submitter_id", how="inner"
    ).dropna(subset=["MKI67_tpm_unst", "tss_code"])
    return table.assign(y=np.log(table["MKI67_tpm_unst"])).reset_index(drop=True)


@pytest.fixture(scope="session")
def slide_table(shared_data: Path) -> pd.DataFrame:
    table = tcga_slide_table(shared_data)
    assert len(table) == 1027 and table["tss_code"].nunique() == 38
    return table


@pytest.fixture(scope="session")
def case_table(slide_table: pd.DataFrame) -> pd.DataFrame:
    table = slide_table.drop_duplicates("submitter_id").reset_index(drop=True)
    assert len(table) == 963
    return table
