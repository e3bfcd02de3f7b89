"""Patient and site splits: deterministic, whole patients, whole sites, small sites in train."""

from __future__ import annotations

from collections import Counter

import pytest

from histo_renn_dagster.core.cohort.splits import (
    SplitSpec,
    assign_site_splits,
    split_patients_within_sites,
    split_sites,
)
from histo_renn_dagster.core.errors import CohortError

# 10 sites of 2..40 patients: 2+4+...+20 ... sizes below
SIZES = {"S0": 2, "S1": 4, "S2": 5, "S3": 8, "S4": 12, "S5": 20, "S6": 25, "S7": 30, "S8": 40}


def _patients() -> dict[str, str]:
    return {f"{site}-P{i:02d}": site for site, n in SIZES.items() for i in range(n)}


def test_patient_split_is_deterministic_and_proportional_within_sites():
    patients = _patients()
    spec = SplitSpec(seed=7)
    split = split_patients_within_sites(patients, spec)
    assert split == split_patients_within_sites(dict(reversed(patients.items())), spec)
    assert split != split_patients_within_sites(patients, SplitSpec(seed=8))
    for site, n in SIZES.items():
        counts = Counter(s for p, s in split.items() if patients[p] == site)
        if n < 5:
            assert counts == {"train": n}
        else:
            expected = max(1, int(0.15 * n + 0.5))
            assert counts["test"] == expected and counts["val"] == expected
            assert counts["train"] == n - 2 * expected
    assert set(split.values()) == {"train", "val", "test"}


def test_site_split_holds_out_whole_sites_near_the_fractions():
    patients = _patients()
    spec = SplitSpec(seed=3)
    by_site = assign_site_splits(patients, spec)
    split = split_sites(patients, spec)
    assert split == split_sites(dict(reversed(patients.items())), spec)
    for patient, site in patients.items():
        assert split[patient] == by_site[site]  # a site is never divided
    assert by_site["S0"] == "train" and by_site["S1"] == "train"  # fewer than 5 patients
    total = len(patients)
    for holdout in ("val", "test"):
        n = sum(1 for s in split.values() if s == holdout)
        assert 0 < n <= 1.25 * 0.15 * total or sum(1 for s in by_site.values() if s == holdout) == 1
    assert any(s == "train" for site, s in by_site.items() if SIZES[site] >= 5)
    seeds = {
        tuple(sorted(assign_site_splits(patients, SplitSpec(seed=s)).items())) for s in range(6)
    }
    assert len(seeds) > 1  # the seed matters


def test_site_split_takes_the_smallest_site_when_every_site_is_large():
    patients = {f"{site}-{i}": site for site in ("A", "B", "C") for i in range(50)}
    by_site = assign_site_splits(patients, SplitSpec())
    assert sorted(by_site.values()) == ["test", "train", "val"]


@pytest.mark.parametrize(
    "kwargs",
    [{"val_fraction": 0.0}, {"test_fraction": 0.6}, {"min_site_patients": 2}],
)
def test_invalid_split_specs(kwargs):
    with pytest.raises(CohortError):
        SplitSpec(**kwargs)


def test_patient_without_site_is_an_error():
    with pytest.raises(CohortError, match="no site"):
        split_patients_within_sites({"P": ""}, SplitSpec())
