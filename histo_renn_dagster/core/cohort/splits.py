"""Deterministic train/val/test splits by patient, stored in the cohort table.

Both splits assign whole patients (cases), so the slides and samples of one patient always share a
split. Order comes from a SHA-256 of (seed, site, patient) rather than a global RNG, so a split
depends only on the seed and the set of patients, not on row order or on the platform.

* ``split_patient``: within every site with at least ``min_site_patients`` patients, the first
  ``round(test_fraction * n)`` patients of the seeded order go to test, the next
  ``round(val_fraction * n)`` to val (at least one each), the rest to train. Smaller sites stay
  wholly in train (too few patients to hold any out). Measures the random-effects benefit on
  sites seen in training.
* ``split_site``: whole sites go to test, then val, until each holds about its fraction of all
  patients: eligible sites (at least ``min_site_patients``) are taken in seeded order when they
  keep the holdout below 1.25x its target; if no site is that small, the smallest one is taken.
  Measures generalisation to new centres. At least one eligible site always stays in train.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from histo_renn_dagster.core.errors import CohortError

SPLITS = ("train", "val", "test")
_OVERSHOOT = 1.25


@dataclass(frozen=True)
class SplitSpec:
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    min_site_patients: int = 5

    def __post_init__(self) -> None:
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 < value < 0.5:
                raise CohortError(f"{name} must be in (0, 0.5), got {value!r}")
        if self.val_fraction + self.test_fraction >= 0.9:
            raise CohortError("val_fraction + test_fraction must leave most patients in train")
        if self.min_site_patients < 3:
            raise CohortError(
                f"min_site_patients must be at least 3 (one train, val, test patient each), "
                f"got {self.min_site_patients}"
            )


def _order_key(seed: int, *parts: str) -> str:
    return hashlib.sha256("|".join((str(seed), *parts)).encode()).hexdigest()


def _half_up(x: float) -> int:
    return int(x + 0.5)


def _by_site(patient_sites: Mapping[str, str]) -> dict[str, list[str]]:
    sites: dict[str, list[str]] = {}
    for patient, site in patient_sites.items():
        if not site:
            raise CohortError(f"patient {patient} has no site; splits need every patient's site")
        sites.setdefault(site, []).append(patient)
    return sites


def split_patients_within_sites(
    patient_sites: Mapping[str, str], spec: SplitSpec
) -> dict[str, str]:
    """``{patient: split}``: train/val/test by patient inside every site (module docstring)."""
    out: dict[str, str] = {}
    for site, patients in _by_site(patient_sites).items():
        if len(patients) < spec.min_site_patients:
            out.update(dict.fromkeys(patients, "train"))
            continue
        ordered = sorted(patients, key=lambda p: (_order_key(spec.seed, "patient", site, p), p))
        n = len(ordered)
        n_test = max(1, _half_up(spec.test_fraction * n))
        n_val = max(1, _half_up(spec.val_fraction * n))
        for i, patient in enumerate(ordered):
            out[patient] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out


def _holdout(order: list[str], sizes: Mapping[str, int], target: float) -> list[str]:
    chosen, n = [], 0
    for site in order:
        if n >= target:
            break
        if n + sizes[site] <= _OVERSHOOT * target:
            chosen.append(site)
            n += sizes[site]
    if not chosen and order:
        chosen = [min(order, key=lambda s: (sizes[s], order.index(s)))]
    return chosen


def assign_site_splits(patient_sites: Mapping[str, str], spec: SplitSpec) -> dict[str, str]:
    """``{site: split}``: whole sites held out for test and val (module docstring)."""
    sites = _by_site(patient_sites)
    sizes = {site: len(patients) for site, patients in sites.items()}
    total = sum(sizes.values())
    eligible = sorted(
        (s for s, n in sizes.items() if n >= spec.min_site_patients),
        key=lambda s: (_order_key(spec.seed, "site", s), s),
    )
    out = dict.fromkeys(sizes, "train")
    # Keep at least one eligible site in train: hold out from all but the last in seeded order.
    pool = eligible[:-1]
    for split, fraction in (("test", spec.test_fraction), ("val", spec.val_fraction)):
        chosen = _holdout(pool, sizes, fraction * total)
        for site in chosen:
            out[site] = split
        pool = [s for s in pool if s not in chosen]
    return out


def split_sites(patient_sites: Mapping[str, str], spec: SplitSpec) -> dict[str, str]:
    """``{patient: split}`` from ``assign_site_splits``."""
    by_site = assign_site_splits(patient_sites, spec)
    return {patient: by_site[site] for patient, site in patient_sites.items()}
