"""The real TCGA-BRCA catalogue the emulator serves offline: cohorts ``demo`` and ``full``.

Real: every slide's GDC file id and file name, case ids and barcodes, tissue source sites, and
what the real scan reported (AppMag, MPP, level-0 size and tile size), and each case's real MKI67
TPM (packaged tables, ``data/tcga_brca/SOURCES.md``). Generated, deterministically from those ids:
sample/portion/slide/aliquot uuids, the STAR-Counts files (``star_files``, ``tcga_rna``) and the
slide pixels (``synthetic_slides``).

``full`` is all 1,133 diagnostic slides (39 sites, 1,062 cases) plus 1,142 STAR-Counts files
(1,027 tumour incl. 31 second aliquots, 115 normal); ``demo`` is 48 slides of 8 sites (45 cases,
plus 4 RNA-only cases, 54 STAR-Counts files) chosen by the stratified rule in ``demo_subset``.
A file id has the same document and bytes in both cohorts, so they share one cache.

Each slide is a synthetic Aperio SVS whose long side is 6,000-8,000 px (fixed per file id) with the
real scan's aspect ratio, AppMag, tile size and MPP (no MPP where the real scan has none). Slides
the reference study never read (116, so size and resolution are unknown) take their site's most
common AppMag/MPP and an aspect ratio drawn from the file id. Stain comes from the site; nuclear
density from the case's real log MKI67 standardised within its site (site mean removed, pooled
within-site SD), so morphology carries the within-site signal and the stain the site effect.
Slides of cases without a value get the neutral density of z = 0.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from histo_renn_dagster.core.errors import CatalogueDataError
from histo_renn_dagster.emulator.catalogue import Blob, Catalogue, GeneratedBlob
from histo_renn_dagster.emulator.demo_subset import select_demo
from histo_renn_dagster.emulator.seeded import stable_order_key, stable_unit
from histo_renn_dagster.emulator.star_files import StarCountsSpec, write_star_counts
from histo_renn_dagster.emulator.synthetic_slides import (
    SlideSpec,
    nuclear_density_for,
    snap_to_pyramid,
    stain_for_site,
    write_svs,
)
from histo_renn_dagster.emulator.tcga_brca_tables import (
    CaseRecord,
    CohortTables,
    ScanRecord,
    SlideRecord,
    load_tables,
)
from histo_renn_dagster.emulator.tcga_documents import rna_document, slide_document
from histo_renn_dagster.emulator.tcga_rna import RNAFileSpec, plan_rna_files

SUBSETS = ("demo", "full")
SLIDE_LONG_SIDE = (6000, 8000)


@dataclass(frozen=True)
class CatalogueSpec:
    """What a catalogue is about: project, the gene whose real TPMs the tables hold, release."""

    project_id: str = "TCGA-BRCA"
    project_name: str = "Breast invasive carcinoma"
    measured_gene_id: str = "ENSG00000148773.14"  # MKI67 in GENCODE v36
    data_release: str = "Data Release 45.0 - December 04, 2025"


def site_scan_defaults(slides: Sequence[SlideRecord]) -> dict[str, ScanRecord]:
    """Per site (and ``""`` for the cohort) the most common (AppMag, MPP) of the scans read."""
    profiles: dict[str, Counter[tuple[float | None, float | None]]] = {"": Counter()}
    for slide in slides:
        if slide.scan.status == "read":
            key = (slide.scan.app_mag, slide.scan.mpp)
            profiles.setdefault(slide.tss_code, Counter())[key] += 1
            profiles[""][key] += 1
    out = {}
    for site, counter in profiles.items():
        # most_common breaks ties by first insertion; sort first so table order never matters.
        (app_mag, mpp), _ = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        out[site] = ScanRecord("read", app_mag, mpp, None, None, None)
    return out


def _within_site_z(cases: Sequence[CaseRecord]) -> dict[str, float]:
    """z of log MKI67 within each site: (y - site mean) / pooled within-site SD."""
    by_site: dict[str, list[tuple[str, float]]] = {}
    for case in cases:
        if case.mki67 is not None:
            by_site.setdefault(case.tss_code, []).append((case.case_id, math.log(case.mki67)))
    residuals: dict[str, float] = {}
    for members in by_site.values():
        mean = sum(y for _, y in members) / len(members)
        residuals.update((case_id, y - mean) for case_id, y in members)
    dof = len(residuals) - len(by_site)
    if dof <= 0:
        raise CatalogueDataError("too few MKI67 values to standardise within sites")
    sd = math.sqrt(sum(r * r for r in residuals.values()) / dof)
    return {case_id: r / sd for case_id, r in residuals.items()}


def slide_spec_for(
    slide: SlideRecord, z: float | None, defaults: dict[str, ScanRecord]
) -> SlideSpec:
    """The synthetic slide standing in for a real scan (see the module docstring)."""
    scan = slide.scan
    if scan.status == "not_read":
        scan = defaults.get(slide.tss_code, defaults[""])
        ratio = 0.55 + 0.45 * stable_unit("slide-aspect", slide.file_id)
        landscape = True
    else:
        assert scan.width is not None and scan.height is not None
        ratio = max(min(scan.width, scan.height) / max(scan.width, scan.height), 0.25)
        landscape = scan.width >= scan.height
    low, high = SLIDE_LONG_SIDE
    long_side = snap_to_pyramid(
        round(low + (high - low) * stable_unit("slide-long", slide.file_id))
    )
    short_side = snap_to_pyramid(round(long_side * ratio))
    width, height = (long_side, short_side) if landscape else (short_side, long_side)
    return SlideSpec(
        seed=int(stable_order_key("slide-seed", slide.file_id)[:15], 16),
        width=width,
        height=height,
        mpp=scan.mpp,
        app_mag=scan.app_mag,
        tile_size=slide.scan.tile_size or 240,
        stain=stain_for_site(slide.tss_code),
        nuclear_density=nuclear_density_for(0.0 if z is None else z),
        tissue_fraction=round(0.35 + 0.3 * stable_unit("slide-tissue", slide.file_id), 4),
        label=slide.barcode.text,
    )


def _slide_blob(cache_dir: Path, slide: SlideRecord, spec: SlideSpec) -> Blob:
    path = cache_dir / "slides" / slide.file_id / slide.file_name
    return GeneratedBlob(path, functools.partial(write_svs, spec=spec))


def _rna_blob(cache_dir: Path, rna: RNAFileSpec, spec: CatalogueSpec) -> Blob:
    star = StarCountsSpec.of(rna.file_id, {spec.measured_gene_id: rna.mki67_tpm})
    path = cache_dir / "expression" / rna.file_id / rna.file_name
    return GeneratedBlob(path, functools.partial(write_star_counts, spec=star))


def build_catalogue(
    subset: str,
    cache_dir: Path,
    *,
    project_id: str = "TCGA-BRCA",
    spec: CatalogueSpec | None = None,
) -> Catalogue:
    """The ``demo`` or ``full`` catalogue; generated bytes are cached under ``cache_dir``."""
    if subset not in SUBSETS:
        raise CatalogueDataError(f"unknown cohort subset {subset!r}; expected one of {SUBSETS}")
    spec = spec or CatalogueSpec(project_id=project_id)
    if spec.project_id != project_id:
        raise CatalogueDataError(f"spec is for {spec.project_id}, asked for {project_id}")
    tables = load_tables(project_id)
    slides, cases = _subset(tables, subset)
    cache_dir = Path(cache_dir)
    defaults = site_scan_defaults(tables.slides)
    z_of = _within_site_z(tables.cases)
    case_of = {c.case_id: c for c in tables.cases}
    files: list[dict[str, Any]] = []
    blobs: dict[str, Blob] = {}
    for slide in slides:
        case = case_of[slide.case_id]
        files.append(slide_document(slide, case, spec.project_name))
        blobs[slide.file_id] = _slide_blob(
            cache_dir, slide, slide_spec_for(slide, z_of.get(case.case_id), defaults)
        )
    sample_types: dict[str, list[str]] = {}
    for slide in tables.slides:
        sample_types.setdefault(slide.case_id, []).append(slide.barcode.sample_type_code)
    for rna in plan_rna_files(cases, sample_types):
        files.append(rna_document(rna, spec.project_name))
        blobs[rna.file_id] = _rna_blob(cache_dir, rna, spec)
    return Catalogue(subset, spec.data_release, files, blobs)


def _subset(tables: CohortTables, subset: str) -> tuple[list[SlideRecord], list[CaseRecord]]:
    if subset == "full":
        return list(tables.slides), list(tables.cases)
    selection = select_demo(tables)
    chosen = set(selection.slide_file_ids)
    wanted = set(selection.case_ids)
    return (
        [s for s in tables.slides if s.file_id in chosen],
        [c for c in tables.cases if c.case_id in wanted],
    )
