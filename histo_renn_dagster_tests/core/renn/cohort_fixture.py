"""A small synthetic cohort table in the shape of ``cohort_table`` (for the study tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd

SITES = ("A1", "B2", "C3", "D4", "E5")


def synthetic_cohort_table(*, per_site: int = 7, dim: int = 6, seed: int = 0) -> pd.DataFrame:
    """``len(SITES) * per_site`` units: y = f(emb) + site effect + noise; split_patient holds out
    patients of every site, split_site holds out whole sites (E5 test, D4 val)."""
    rng = np.random.default_rng(seed)
    site = np.repeat(np.array(SITES), per_site)
    n = site.size
    emb = rng.normal(0.0, 1.0, (n, dim)).astype(np.float32)
    effect = dict(zip(SITES, rng.normal(0.0, 0.6, len(SITES)), strict=True))
    y = 2.0 + np.tanh(emb[:, 0]) + np.array([effect[s] for s in site]) + rng.normal(0, 0.5, n)
    within = np.tile(np.arange(per_site), len(SITES))
    split_patient = np.where(within == 0, "test", np.where(within == 1, "val", "train"))
    split_site = np.select([site == "E5", site == "D4"], ["test", "val"], "train")
    frame = pd.DataFrame(
        {
            "unit_id": [f"U{i:03d}" for i in range(n)],
            # list-valued, as in the real cohort_table (a sample may have several slides)
            "file_ids": [[f"F{i:03d}"] for i in range(n)],
            "slide_barcodes": [[f"TCGA-{s}-{i:04d}-01Z-00-DX1"] for i, s in enumerate(site)],
            "case_id": [f"C{i:03d}" for i in range(n)],
            "sample_barcode": [f"TCGA-{s}-{i:04d}-01A" for i, s in enumerate(site)],
            "site_code": site,
            "site_name": [f"Site {s}" for s in site],
            "mki67_tpm": np.exp(y),
            "y": y,
            "split_patient": split_patient,
            "split_site": split_site,
        }
    )
    columns = pd.DataFrame(emb, columns=[f"emb_{i:04d}" for i in range(dim)])
    return pd.concat([frame, columns], axis=1)
