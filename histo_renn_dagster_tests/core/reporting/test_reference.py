"""The exact ML reference and site-effect intervals used by the variance and caterpillar plots."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from histo_renn_dagster.core.renn.baselines import fit_lmm
from histo_renn_dagster.core.reporting.reference import (
    Z95,
    conditional_sd,
    fit_ml_reference,
    ml_site_effects,
    model_site_effects,
    reference_units,
)


def _predictions(splits_by_run: dict[int, list[str]]) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    sites = ["A2", "A2", "A2", "BH", "BH", "BH", "E2", "E2", "E2", "OL", "OL", "OL"]
    y = rng.normal(2.0, 1.0, len(sites)) + np.repeat([0.8, -0.5, 0.1, 0.4], 3)
    frames = []
    for run, split in splits_by_run.items():
        frames.append(
            pd.DataFrame(
                {
                    "loss_func": "NLL_U",
                    "run": run,
                    "unit_id": [f"u{i:02d}" for i in range(len(sites))],
                    "site_code": sites,
                    "split": split,
                    "y": y,
                    "blup": 0.0,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


FIXED = ["train", "train", "test"] * 3 + ["test"] * 3  # OL is an unseen site


def test_fixed_split_fits_the_training_units_exactly():
    preds = _predictions({17: FIXED, 41: FIXED})
    ref = fit_ml_reference(preds)
    assert ref is not None and ref.rows == "train units" and ref.units == 6 and ref.sites == 3
    train = preds[(preds["run"] == 17) & (preds["split"] == "train")]
    _, site = np.unique(train["site_code"], return_inverse=True)
    expected = fit_lmm(train["y"].to_numpy(), site)
    assert ref.sigma2_b == pytest.approx(expected.sigma2_b)
    assert ref.sigma2_e == pytest.approx(expected.sigma2_e)
    assert ref.sigma2_b_ci == pytest.approx(expected.sigma2_b_ci)
    assert ref.icc == pytest.approx(ref.sigma2_b / (ref.sigma2_b + ref.sigma2_e))


def test_split_that_changes_per_run_falls_back_to_all_units():
    other = ["test", "train", "train"] * 3 + ["train"] * 3
    ref = fit_ml_reference(_predictions({17: FIXED, 41: other}))
    assert ref is not None and ref.rows == "all units" and ref.units == 12 and ref.sites == 4


def test_too_few_units_gives_no_reference():
    preds = _predictions({17: FIXED}).iloc[:2]
    assert fit_ml_reference(preds) is None
    assert reference_units(preds.iloc[0:0]).empty


def test_conditional_sd_shrinks_with_site_size():
    sd = conditional_sd(np.array([0, 1, 100]), s2b=0.5, s2e=1.0)
    assert sd[0] == pytest.approx(math.sqrt(0.5))  # no data: the prior
    assert sd[1] == pytest.approx(math.sqrt(0.5 * 1.0 / (1.0 + 0.5)))
    assert sd[2] < 0.1
    assert (conditional_sd(np.array([3]), s2b=float("nan"), s2e=1.0) == 0).all()


def test_model_site_effects_use_the_units_blup_and_train_counts():
    preds = _predictions({17: FIXED})
    preds["blup"] = preds["site_code"].map({"A2": 0.5, "BH": -0.25, "E2": 0.0, "OL": 0.0})
    eff = model_site_effects(preds, s2b=0.4, s2e=0.9).set_index("site_code")
    assert eff.loc["A2", "blup"] == 0.5 and eff.loc["A2", "n_train"] == 2
    assert eff.loc["OL", "n_train"] == 0
    assert eff.loc["OL", "high"] == pytest.approx(Z95 * math.sqrt(0.4))
    assert eff.loc["BH", "low"] == pytest.approx(
        -0.25 - Z95 * math.sqrt(0.4 * 0.9 / (0.9 + 2 * 0.4))
    )


def test_ml_site_effects_are_shrunk_mean_residuals():
    preds = _predictions({17: FIXED})
    ref = fit_ml_reference(preds)
    assert ref is not None
    eff = ml_site_effects(preds, ref).set_index("site_code")
    train = preds[preds["split"] == "train"]
    a2 = train[train["site_code"] == "A2"]["y"].to_numpy() - ref.mu
    shrink = ref.sigma2_b / (ref.sigma2_b + ref.sigma2_e / len(a2))
    assert eff.loc["A2", "blup"] == pytest.approx(shrink * a2.mean())
    assert eff.loc["OL", "blup"] == 0.0 and eff.loc["OL", "n_train"] == 0
