"""BLUPs from training rows only, and the held-out metrics of a fit."""

from __future__ import annotations

import numpy as np
import pytest

from histo_renn_dagster.core.renn.data import make_renn_data
from histo_renn_dagster.core.renn.evaluate import blup, evaluate_fit, score_predictions
from histo_renn_dagster.core.renn.spec import RennSpec
from histo_renn_dagster.core.renn.train import fit_renn
from histo_renn_dagster_tests.core.renn.dense import cov


def test_blup_is_the_conditional_mean_of_the_site_effect() -> None:
    rng = np.random.default_rng(0)
    site = rng.integers(0, 5, 40)
    site[site == 4] = 3  # site 4 has no rows
    resid = rng.normal(size=40)
    s2e, s2b = 0.7, 0.3
    got = blup(resid, site, 6, s2e, s2b)
    for j in range(6):
        r = resid[site == j]
        want = (
            0.0
            if r.size == 0
            else s2b * np.ones(r.size) @ np.linalg.solve(cov(r.size, s2e, s2b), r)
        )
        assert got[j] == pytest.approx(want, abs=1e-12)
    assert (blup(resid, site, 6, s2e, 0.0) == 0).all()


def test_scores_use_training_rows_only_and_split_seen_from_unseen_sites() -> None:
    rng = np.random.default_rng(1)
    site = np.repeat(np.arange(6), 10)
    y = rng.normal(size=60) + np.repeat(rng.normal(0, 1, 6), 10)
    train = np.flatnonzero((np.arange(60) % 10 < 7) & (site < 5))
    test = np.setdiff1d(np.arange(60), train)
    kwargs = dict(
        model="m",
        loss="NLL",
        m="2",
        seed=1,
        site=site,
        num_sites=6,
        fixed=np.zeros(60),
        train_rows=train,
        test_rows=test,
        s2e=1.0,
        s2b=1.0,
    )
    rows = {r.subset: r for r in score_predictions(y=y, **kwargs)}
    assert rows["seen"].n_rows == 15 and rows["unseen"].n_rows == 10
    assert rows["unseen"].mse == pytest.approx(rows["unseen"].mse_no_re)  # b = 0 there
    assert rows["seen"].mse < rows["seen"].mse_no_re  # the BLUP helps with real site effects
    y2 = y.copy()
    y2[test] += 5.0  # moving the test outcomes does not move the predictions
    moved = {r.subset: r for r in score_predictions(y=y2, **kwargs)}
    b = blup(y[train], site[train], 6, 1.0, 1.0)
    seen = test[site[test] < 5]
    assert moved["seen"].mse == pytest.approx(np.mean((y2[seen] - b[site[seen]]) ** 2))


def test_evaluate_fit_reports_each_seed_and_subset() -> None:
    rng = np.random.default_rng(2)
    site = np.repeat(np.arange(8), 12)
    split = np.where(site == 7, "test", np.where(rng.random(96) < 0.2, "test", "train"))
    split[(split == "train") & (rng.random(96) < 0.2)] = "val"
    data = make_renn_data(rng.normal(size=96) + site * 0.1, site.astype(str), None, split)
    fit = fit_renn(data, RennSpec(loss="NLL_U", m=4, seeds=(17, 41), step_budget=50))
    rows = evaluate_fit(fit, data)
    assert {(r.seed, r.subset) for r in rows} == {
        (s, k) for s in (17, 41) for k in ("seen", "unseen")
    }
    assert all(np.isfinite(r.nll) and r.model == "RENN-U" for r in rows)
