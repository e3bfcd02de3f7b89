"""The real TCGA-BRCA cohort tables shipped with the emulator, loaded as frozen records.

Three CSVs in ``emulator/data/tcga_brca/`` (see the SOURCES.md there): the 1,133 diagnostic slides,
what OpenSlide read from each real scan, and each case's real MKI67 TPM. Nothing here invents data;
the generated parts of the catalogue (ids of samples and aliquots, pixels, other genes) live in the
modules that use these records.

Scan metadata comes in three kinds, and the difference matters to the slide pipeline:
``read`` (vendor, AppMag and MPP known), ``no_mpp`` (the real scan was read but carries no MPP:
seven University of Chicago slides, all 40x) and ``not_read`` (the reference study recorded nothing
for the slide: 116 rows, so its magnification, MPP and size are unknown to us, not absent).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from histo_renn_dagster.core.errors import CatalogueDataError

DATA_PACKAGE = "histo_renn_dagster.emulator"
SLIDES_CSV = "diagnostic_slides.csv"
SCANS_CSV = "diagnostic_slides_scan_metadata.csv"
EXPRESSION_CSV = "mki67_tpm_unstranded.csv"

ScanStatus = Literal["read", "no_mpp", "not_read"]


@dataclass(frozen=True)
class ScanRecord:
    """What OpenSlide read from the real scan (``None`` where nothing is known)."""

    status: ScanStatus
    app_mag: float | None
    mpp: float | None
    width: int | None
    height: int | None
    tile_size: int | None


@dataclass(frozen=True)
class SlideBarcode:
    """The parts of a diagnostic-slide barcode ``TCGA-XX-YYYY-SSV-PP-DXn`` the catalogue needs."""

    text: str
    case: str
    sample_type_code: str
    vial: str
    portion: str
    slide: str

    @property
    def sample(self) -> str:
        return f"{self.case}-{self.sample_type_code}{self.vial}"

    @property
    def on_portion(self) -> bool:
        """True for the few DX slides GDC attaches to a real portion (``01A-02-DX2``)."""
        return self.portion != "00"


@dataclass(frozen=True)
class SlideRecord:
    file_id: str
    file_name: str
    case_id: str
    case_submitter_id: str
    project_id: str
    tss_code: str
    tss_name: str
    barcode: SlideBarcode
    scan: ScanRecord


@dataclass(frozen=True)
class CaseRecord:
    """A case of the project: with slides, RNA, or both. ``mki67_text`` is the value as printed."""

    case_id: str
    submitter_id: str
    project_id: str
    tss_code: str
    tss_name: str
    mki67_text: str | None
    slide_file_ids: tuple[str, ...]

    @property
    def mki67(self) -> float | None:
        return None if self.mki67_text is None else float(self.mki67_text)


@dataclass(frozen=True)
class CohortTables:
    project_id: str
    slides: tuple[SlideRecord, ...]
    cases: tuple[CaseRecord, ...]

    def case(self, case_id: str) -> CaseRecord:
        for case in self.cases:
            if case.case_id == case_id:
                return case
        raise CatalogueDataError(f"case {case_id!r} is not in the {self.project_id} tables")


def parse_slide_barcode(file_name: str) -> SlideBarcode:
    """Split the barcode that starts a real SVS file name; reject anything else by name."""
    text = file_name.split(".", 1)[0]
    parts = text.split("-")
    if len(parts) != 6 or parts[0] != "TCGA" or len(parts[3]) != 3 or not parts[5].startswith("DX"):
        raise CatalogueDataError(
            f"slide file name {file_name!r}: expected TCGA-XX-YYYY-SSV-PP-DXn.<uuid>.svs"
        )
    return SlideBarcode(
        text=text,
        case="-".join(parts[:3]),
        sample_type_code=parts[3][:2],
        vial=parts[3][2],
        portion=parts[4],
        slide=parts[5],
    )


def _rows(name: str) -> Iterator[dict[str, str]]:
    # One joinpath step at a time: Python 3.10 Traversables take a single name.
    path = resources.files(DATA_PACKAGE) / "data" / "tcga_brca" / name
    yield from csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))


def _number(text: str, *, what: str, item: str) -> float | None:
    if text.strip() in ("", "nan", "NaN", "Unknown"):
        return None
    try:
        value = float(text)
    except ValueError as exc:
        raise CatalogueDataError(f"{item}: {what} {text!r} is not a number") from exc
    if not math.isfinite(value) or value <= 0:
        raise CatalogueDataError(f"{item}: {what} {text!r} is not a positive number")
    return value


def _scan(row: dict[str, str]) -> ScanRecord:
    item = f"scan metadata of {row['file_id']}"
    if not row["Vendor"].strip():
        return ScanRecord("not_read", None, None, None, None, None)
    app_mag = _number(row["Original Magnification"], what="magnification", item=item)
    mpp = _number(row["MPP X"], what="MPP", item=item)
    try:
        width, height = (int(v) for v in json.loads(row["Extracted Dimensions"]))
    except (ValueError, TypeError) as exc:
        raise CatalogueDataError(f"{item}: dimensions {row['Extracted Dimensions']!r}") from exc
    if row["Extracted Level"] not in ("0.0", "0"):
        # The dimensions are those of the extracted level; only level 0 gives the scan's size.
        raise CatalogueDataError(f"{item}: dimensions are of level {row['Extracted Level']}")
    tile = _number(row["Tile Width"], what="tile width", item=item)
    status: ScanStatus = "no_mpp" if mpp is None else "read"
    return ScanRecord(status, app_mag, mpp, width, height, None if tile is None else int(tile))


def load_tables(project_id: str = "TCGA-BRCA") -> CohortTables:
    """The packaged cohort of ``project_id`` (only TCGA-BRCA ships), checked for consistency."""
    scans = {row["file_id"]: _scan(row) for row in _rows(SCANS_CSV)}
    slides: list[SlideRecord] = []
    tss_names: dict[str, str] = {}
    for row in _rows(SLIDES_CSV):
        if row["project"] != project_id:
            continue
        barcode = parse_slide_barcode(row["file_name"])
        if barcode.case != row["submitter_id"] or row["file_id"] not in scans:
            raise CatalogueDataError(
                f"slide {row['file_id']}: barcode {barcode.text} vs case {row['submitter_id']}, "
                "or no scan metadata row"
            )
        tss_names[row["tss_code"]] = row["tss_name"]
        slides.append(
            SlideRecord(
                file_id=row["file_id"],
                file_name=row["file_name"],
                case_id=row["case_id"],
                case_submitter_id=row["submitter_id"],
                project_id=project_id,
                tss_code=row["tss_code"],
                tss_name=row["tss_name"],
                barcode=barcode,
                scan=scans[row["file_id"]],
            )
        )
    if not slides:
        raise CatalogueDataError(f"no packaged slide table rows for project {project_id!r}")
    return CohortTables(project_id, tuple(slides), _cases(project_id, slides, tss_names))


def _cases(
    project_id: str, slides: list[SlideRecord], tss_names: dict[str, str]
) -> tuple[CaseRecord, ...]:
    by_case: dict[str, list[SlideRecord]] = {}
    for slide in slides:
        by_case.setdefault(slide.case_id, []).append(slide)
    values: dict[str, tuple[str, str | None]] = {}
    for row in _rows(EXPRESSION_CSV):
        text = row["MKI67_tpm_unst"].strip()
        if text:
            _number(text, what="MKI67 TPM", item=f"case {row['case_id']}")
        values[row["case_id"]] = (row["submitter_id"], text or None)
    cases: list[CaseRecord] = []
    for case_id in sorted(set(by_case) | set(values)):
        own = by_case.get(case_id, [])
        submitter = own[0].case_submitter_id if own else values[case_id][0]
        if case_id in values and values[case_id][0] != submitter:
            raise CatalogueDataError(
                f"case {case_id}: expression table says {values[case_id][0]}, slides {submitter}"
            )
        tss = submitter.split("-")[1]
        cases.append(
            CaseRecord(
                case_id=case_id,
                submitter_id=submitter,
                project_id=project_id,
                tss_code=tss,
                # A site seen only in the expression table has no name in our data.
                tss_name=tss_names.get(tss, "Not Reported"),
                mki67_text=values.get(case_id, (submitter, None))[1],
                slide_file_ids=tuple(s.file_id for s in own),
            )
        )
    return tuple(cases)
