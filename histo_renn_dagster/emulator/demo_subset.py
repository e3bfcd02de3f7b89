"""The ``demo`` cohort: a small, deterministic, stratified subset of the real TCGA-BRCA slides.

Rule (same result on every build; "hash order" = SHA-256 of the case id, see ``seeded``):

1. Eligible sites have >= 9 diagnostic slides and >= 4 cases with a real MKI67 value.
2. Three sites are taken for what they exercise: the one with most real scans lacking MPP (OL,
   University of Chicago), the one with most 20x scans (A8, Indivumed), the one with most DX slides
   hanging off a portion (PL, Christiana Healthcare). The other five are the eligible sites at
   evenly spaced ranks of site mean log(MKI67), so the demo spans low to high site effects.
3. In each site whole cases are taken (a patient's DX1/DX2 stay together) until the site has at
   least ``SLIDES_PER_SITE`` slides: first, in hash order, one case for each feature the site offers
   (two scans without MPP, a multi-slide patient, a 20x scan, a case with no RNA file at all, a case
   whose only RNA is normal tissue, a case with a normal RNA file, a case with a second tumour
   aliquot), then the rest in hash order.
4. Per site, the first case in hash order that has RNA but no diagnostic slide is added as well, so
   matching meets RNA without a slide.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from histo_renn_dagster.emulator.seeded import stable_order_key
from histo_renn_dagster.emulator.tcga_brca_tables import CaseRecord, CohortTables, SlideRecord
from histo_renn_dagster.emulator.tcga_rna import extra_aliquot_kind, has_normal_file

DEMO_SITES = 8
SLIDES_PER_SITE = 6
MIN_SITE_SLIDES = 9
MIN_SITE_VALUED_CASES = 4
NO_MPP_CASES_PER_SITE = 2


@dataclass(frozen=True)
class DemoSelection:
    site_codes: tuple[str, ...]
    slide_file_ids: tuple[str, ...]
    case_ids: tuple[str, ...]  # slide cases and the RNA-only cases


def _hash_order(cases: Sequence[CaseRecord]) -> list[CaseRecord]:
    return sorted(cases, key=lambda c: stable_order_key("demo", c.case_id))


def _site_mean_log_mki67(cases: Sequence[CaseRecord]) -> float:
    values = [math.log(c.mki67) for c in cases if c.mki67 is not None]
    return sum(values) / len(values)


def _choose_sites(tables: CohortTables, slides_of: dict[str, list[SlideRecord]]) -> list[str]:
    by_site: dict[str, list[CaseRecord]] = {}
    for case in tables.cases:
        if case.slide_file_ids:
            by_site.setdefault(case.tss_code, []).append(case)

    def slides_in(site: str) -> list[SlideRecord]:
        return [s for c in by_site[site] for s in slides_of[c.case_id]]

    eligible = sorted(
        site
        for site, cases in by_site.items()
        if len(slides_in(site)) >= MIN_SITE_SLIDES
        and sum(c.mki67 is not None for c in cases) >= MIN_SITE_VALUED_CASES
    )
    chosen: list[str] = []
    features: tuple[Callable[[SlideRecord], bool], ...] = (
        lambda s: s.scan.status == "no_mpp",
        lambda s: s.scan.app_mag == 20.0,
        lambda s: s.barcode.on_portion,
    )
    for feature in features:
        counts = {site: sum(map(feature, slides_in(site))) for site in eligible}
        best = max((n, site) for site, n in counts.items() if site not in chosen)
        if best[0] > 0:
            chosen.append(best[1])
    rest = sorted(
        (s for s in eligible if s not in chosen),
        key=lambda s: (_site_mean_log_mki67(by_site[s]), s),
    )
    wanted = min(DEMO_SITES - len(chosen), len(rest))
    if wanted > 0:
        step = (len(rest) - 1) / max(wanted - 1, 1)
        chosen.extend(rest[round(i * step)] for i in range(wanted))
    return chosen


def _case_features(slides_of: dict[str, list[SlideRecord]]) -> list[Callable[[CaseRecord], bool]]:
    def no_mpp(c: CaseRecord) -> bool:
        return any(s.scan.status == "no_mpp" for s in slides_of[c.case_id])

    return [
        *[no_mpp] * NO_MPP_CASES_PER_SITE,
        lambda c: len(slides_of[c.case_id]) > 1,
        lambda c: any(s.scan.app_mag == 20.0 for s in slides_of[c.case_id]),
        lambda c: c.mki67 is None and not has_normal_file(c),
        lambda c: c.mki67 is None and has_normal_file(c),
        has_normal_file,
        lambda c: extra_aliquot_kind(c) is not None,
    ]


def select_demo(tables: CohortTables) -> DemoSelection:
    """The demo subset of ``tables`` under the rule in the module docstring."""
    slides_of: dict[str, list[SlideRecord]] = {}
    for slide in tables.slides:
        slides_of.setdefault(slide.case_id, []).append(slide)
    sites = _choose_sites(tables, slides_of)
    features = _case_features(slides_of)
    slide_ids: list[str] = []
    case_ids: list[str] = []
    for site in sites:
        site_cases = [c for c in tables.cases if c.tss_code == site]
        ordered = _hash_order([c for c in site_cases if c.slide_file_ids])
        picked: list[CaseRecord] = []
        for feature in features:
            match = next((c for c in ordered if c not in picked and feature(c)), None)
            if match is not None and sum(len(c.slide_file_ids) for c in picked) < SLIDES_PER_SITE:
                picked.append(match)
        for case in ordered:
            if sum(len(c.slide_file_ids) for c in picked) >= SLIDES_PER_SITE:
                break
            if case not in picked:
                picked.append(case)
        rna_only = _hash_order([c for c in site_cases if not c.slide_file_ids])
        for case in picked:
            case_ids.append(case.case_id)
            slide_ids.extend(s.file_id for s in slides_of[case.case_id])
        valued = next((c for c in rna_only if c.mki67 is not None), None)
        if valued is not None:
            case_ids.append(valued.case_id)
    return DemoSelection(tuple(sites), tuple(slide_ids), tuple(case_ids))
