"""TCGA barcodes: parse case, sample, portion, analyte, aliquot and slide submitter ids.

Anatomy (GDC_API.md 15.1)::

    TCGA-BH-A0EA                    case        (project, TSS, participant)
    TCGA-BH-A0EA-01A                sample      (sample type code 01, vial A)
    TCGA-BH-A0EA-01A-11R            analyte     (portion 11, analyte R)
    TCGA-BH-A0EA-01A-11R-A115-07    aliquot     (plate A115, centre 07)
    TCGA-BH-A0EA-01Z-00-DX1         slide       (portion 00, diagnostic slide 1)
    TCGA-BH-A0EA-01A-01-TSA         slide       (frozen top slide; BSA bottom, MSA middle)

Case: barcodes are upper case by definition, but they reach us typed by people and inside file
names whose other parts are lower case, so this module *normalises* input to upper case rather
than rejecting it: ``parse_barcode("tcga-bh-a0ea")`` gives the same record as the upper-case text,
and every string it returns is upper case. Whitespace or any other character outside
``[A-Za-z0-9-]`` is rejected (a stray space usually means a column was split wrongly).

Sample type codes outside ``SAMPLE_TYPE_NAMES`` (the TCGA table has a few rare ones such as 15
and 16) parse, with ``sample_type_name`` None; tumour/normal/control follow the code ranges.

A sample token without its vial letter (``TCGA-BH-A0EA-01``, as cBioPortal writes sample ids) is
accepted as a sample barcode with ``vial=None``; anything longer than a sample needs the vial.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from histo_renn_dagster.core.errors import BarcodeError

# GDC `cases.samples.sample_type` vocabulary for each TCGA sample type code. The TCGA code table
# calls 01 "Primary Solid Tumor" and 02 "Recurrent Solid Tumor"; the GDC serves the shorter names
# below, and those are what `sample_type` fields of /files hits carry.
SAMPLE_TYPE_NAMES: dict[str, str] = {
    "01": "Primary Tumor",
    "02": "Recurrent Tumor",
    "03": "Primary Blood Derived Cancer - Peripheral Blood",
    "04": "Recurrent Blood Derived Cancer - Bone Marrow",
    "05": "Additional - New Primary",
    "06": "Metastatic",
    "07": "Additional Metastatic",
    "08": "Human Tumor Original Cells",
    "09": "Primary Blood Derived Cancer - Bone Marrow",
    "10": "Blood Derived Normal",
    "11": "Solid Tissue Normal",
    "12": "Buccal Cell Normal",
    "13": "EBV Immortalized Normal",
    "14": "Bone Marrow Normal",
    "20": "Control Analyte",
    "40": "Recurrent Blood Derived Cancer - Peripheral Blood",
    "50": "Cell Lines",
    "60": "Primary Xenograft Tissue",
    "61": "Cell Line Derived Xenograft Tissue",
}

ANALYTE_NAMES: dict[str, str] = {
    "D": "DNA",
    "G": "GenomePlex (Rubicon) amplified DNA",
    "H": "mirVana RNA (total RNA > 200 nt)",
    "R": "RNA",
    "T": "Total RNA",
    "W": "Repli-G (Qiagen) whole-genome amplified DNA",
    "X": "Repli-G X (Qiagen) whole-genome amplified DNA",
}

SLIDE_KINDS: dict[str, str] = {
    "DX": "diagnostic (FFPE H&E)",
    "TS": "frozen tissue, top",
    "BS": "frozen tissue, bottom",
    "MS": "frozen tissue, middle",
}

KINDS = ("case", "sample", "portion", "analyte", "aliquot", "slide")

_CASE = r"(?P<project>TCGA)-(?P<tss>[A-Z0-9]{2})-(?P<participant>[A-Z0-9]{4})"
_SAMPLE = r"(?P<code>\d{2})(?P<vial>[A-Z])"
_BARCODE_RE = re.compile(
    rf"^{_CASE}"
    r"(?:-(?P<code_only>\d{2})"  # sample without vial (nothing may follow)
    rf"|-{_SAMPLE}"
    r"(?:-(?P<portion>\d{2})"
    r"(?:(?P<analyte>[A-Z])(?:-(?P<plate>[A-Z0-9]{4})-(?P<center>\d{2}))?"
    r"|-(?P<slide>(?:DX|TS|BS|MS)[A-Z0-9]{1,2}))?"
    r")?)?$"
)
_ALLOWED = re.compile(r"^[A-Za-z0-9-]+$")


@dataclass(frozen=True)
class TCGABarcode:
    """A parsed TCGA barcode; parts beyond the barcode's ``kind`` are None."""

    text: str
    kind: str
    project: str
    tss: str
    participant: str
    case: str
    sample_type_code: str | None = None
    vial: str | None = None
    sample: str | None = None
    portion: str | None = None
    analyte: str | None = None
    plate: str | None = None
    center: str | None = None
    slide: str | None = None

    @property
    def sample_type_name(self) -> str | None:
        """GDC ``sample_type`` for the code (None for a case barcode or an unlisted code)."""
        return SAMPLE_TYPE_NAMES.get(self.sample_type_code or "")

    @property
    def is_tumour(self) -> bool:
        return self.sample_type_code is not None and is_tumour_code(self.sample_type_code)

    @property
    def is_normal(self) -> bool:
        return self.sample_type_code is not None and is_normal_code(self.sample_type_code)

    @property
    def slide_kind(self) -> str | None:
        """``DX``, ``TS``, ``BS`` or ``MS`` for a slide barcode."""
        return self.slide[:2] if self.slide else None

    @property
    def is_diagnostic_slide(self) -> bool:
        return self.slide_kind == "DX"


def _code_number(code: str) -> int:
    if not (isinstance(code, str) and len(code) == 2 and code.isdigit()):
        raise BarcodeError(f"sample type code must be two digits such as '01', got {code!r}")
    return int(code)


def is_tumour_code(code: str) -> bool:
    """True for tumour sample types 01-09 (primary, recurrent, metastatic, ...)."""
    return 1 <= _code_number(code) <= 9


def is_normal_code(code: str) -> bool:
    """True for normal sample types 10-19 (blood, solid tissue, buccal, ...)."""
    return 10 <= _code_number(code) <= 19


def is_control_code(code: str) -> bool:
    """True for control sample types 20-29."""
    return 20 <= _code_number(code) <= 29


def parse_barcode(text: str) -> TCGABarcode:
    """Parse any TCGA barcode, normalised to upper case; raise BarcodeError naming the text."""
    if not isinstance(text, str):
        raise BarcodeError(f"TCGA barcode must be a string, got {type(text).__name__} {text!r}")
    if not _ALLOWED.fullmatch(text):
        raise BarcodeError(
            f"not a TCGA barcode: {text!r} (only letters, digits and '-' are allowed, "
            "e.g. 'TCGA-BH-A0EA-01A-11R-A115-07')"
        )
    upper = text.upper()
    m = _BARCODE_RE.fullmatch(upper)
    if m is None:
        raise BarcodeError(
            f"not a TCGA barcode: {text!r} (expected TCGA-TSS-PART[-SSV[-PPA-PLAT-CC | -PP-DX1]], "
            "e.g. 'TCGA-BH-A0EA-01A-11R-A115-07' or 'TCGA-BH-A0EA-01Z-00-DX1')"
        )
    g = m.groupdict()
    case = f"{g['project']}-{g['tss']}-{g['participant']}"
    code = g["code"] or g["code_only"]
    if code == "00":
        raise BarcodeError(f"TCGA barcode {text!r} has sample type code '00' (codes start at 01)")
    analyte = g["analyte"]
    if analyte is not None and analyte not in ANALYTE_NAMES:
        raise BarcodeError(
            f"TCGA barcode {text!r} has unknown analyte {analyte!r} "
            f"(known: {', '.join(ANALYTE_NAMES)})"
        )
    if g["slide"]:
        kind = "slide"
    elif g["plate"]:
        kind = "aliquot"
    elif analyte:
        kind = "analyte"
    elif g["portion"]:
        kind = "portion"
    elif code:
        kind = "sample"
    else:
        kind = "case"
    vial = g["vial"]
    return TCGABarcode(
        text=upper,
        kind=kind,
        project=g["project"],
        tss=g["tss"],
        participant=g["participant"],
        case=case,
        sample_type_code=code,
        vial=vial,
        sample=f"{case}-{code}{vial or ''}" if code else None,
        portion=g["portion"],
        analyte=analyte,
        plate=g["plate"],
        center=g["center"],
        slide=g["slide"],
    )


def parse_barcode_of_kind(text: str, kind: str) -> TCGABarcode:
    """Parse ``text`` and require it to be a barcode of ``kind`` (one of ``KINDS``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown barcode kind {kind!r}; expected one of {KINDS}")
    parsed = parse_barcode(text)
    if parsed.kind != kind:
        raise BarcodeError(
            f"expected a TCGA {kind} barcode, got {text!r} (a {parsed.kind} barcode)"
        )
    return parsed


def slide_barcode_from_file_name(file_name: str) -> str:
    """The slide barcode an SVS file name starts with, validated and upper case.

    ``TCGA-A6-6648-01Z-00-DX1.88b9a490-0bed-43f3-bd74-1bf2810f6884.svs`` ->
    ``TCGA-A6-6648-01Z-00-DX1``. The UUID after the first dot is the slide image's id, not the GDC
    file_id, and is not checked here.
    """
    if not isinstance(file_name, str) or not file_name:
        raise BarcodeError(f"slide file name must be a non-empty string, got {file_name!r}")
    token = file_name.split(".", 1)[0]
    try:
        parsed = parse_barcode(token)
    except BarcodeError as exc:
        raise BarcodeError(
            f"slide file name {file_name!r} does not start with a TCGA slide barcode: {exc}"
        ) from exc
    if parsed.kind != "slide":
        raise BarcodeError(
            f"slide file name {file_name!r} starts with {token!r}, a {parsed.kind} barcode, "
            "not a slide barcode such as 'TCGA-BH-A0EA-01Z-00-DX1'"
        )
    return parsed.text
