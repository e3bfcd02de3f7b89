"""Flat, validated records built from the nested ``/files`` hits of the two canonical queries.

A GDC hit nests the biospecimen path of a file:
``cases[0].samples[...].portions[...].analytes[...].aliquots[...]`` (RNA) or
``cases[0].samples[...].portions[...].slides[...]`` (slides, sometimes hanging off the sample).
``from_hit`` flattens that into one frozen record and cross-checks the barcodes against the
structured fields, because a mislabelled file would silently pair a slide with someone else's RNA.

What is required (a missing one raises GDCRecordError naming the file id): ``file_id`` (or ``id``),
``file_name`` and a non-empty ``cases`` list; for RNA also a sample or aliquot submitter id. The
other metadata (md5, size, state, case UUID, site, project, ...) is None when the query did not ask
for it, so a hit with few fields (e.g. the docs' ``fields=cases.submitter_id,file_id,...``) still
parses. Barcodes are upper-cased (see ``barcodes.py``); the case barcode is derived from the
file's own barcode when the hit lacks ``cases[].submitter_id`` and must agree with it when present.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from histo_renn_dagster.core.errors import BarcodeError, GDCRecordError
from histo_renn_dagster.core.gdc.barcodes import (
    SAMPLE_TYPE_NAMES,
    TCGABarcode,
    parse_barcode,
    parse_barcode_of_kind,
    slide_barcode_from_file_name,
)

_MD5_RE = re.compile(r"^[0-9a-fA-F]{32}$")


def _fail(file_id: str, problem: str) -> GDCRecordError:
    return GDCRecordError(f"GDC file {file_id}: {problem}")


def _opt_str(file_id: str, obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _fail(file_id, f"{where}{key} must be a string, got {value!r}")
    return value


def _req_str(file_id: str, obj: Mapping[str, Any], key: str, where: str) -> str:
    value = _opt_str(file_id, obj, key, where)
    if value is None:
        raise _fail(file_id, f"hit lacks required field {where}{key}")
    return value


def _sub(file_id: str, obj: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(file_id, f"{where}{key} must be an object, got {value!r}")
    return value


def _list(file_id: str, obj: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise _fail(file_id, f"{where}{key} must be a list of objects, got {value!r}")
    return value


def _hit_file_id(hit: Mapping[str, Any]) -> str:
    if not isinstance(hit, Mapping):
        raise GDCRecordError(f"GDC hit must be a JSON object, got {type(hit).__name__}")
    for key in ("file_id", "id"):
        value = hit.get(key)
        if isinstance(value, str) and value:
            return value
    raise GDCRecordError(f"GDC hit has no file_id/id: keys {sorted(hit)!r}")


def _md5(file_id: str, hit: Mapping[str, Any]) -> str | None:
    value = _opt_str(file_id, hit, "md5sum", "")
    if value is not None and not _MD5_RE.fullmatch(value):
        raise _fail(file_id, f"md5sum must be 32 hex digits, got {value!r}")
    return value.lower() if value else None


def _size(file_id: str, hit: Mapping[str, Any]) -> int | None:
    value = hit.get("file_size")
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(file_id, f"file_size must be a non-negative integer, got {value!r}")
    return value


def _bool(file_id: str, obj: Mapping[str, Any], key: str, where: str) -> bool | None:
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    # Some biospecimen flags (e.g. oct_embedded) come back as the strings "true"/"false".
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _fail(file_id, f"{where}{key} must be true/false, got {value!r}")


def _barcode(file_id: str, text: str, kind: str, where: str) -> TCGABarcode:
    try:
        return parse_barcode_of_kind(text, kind)
    except BarcodeError as exc:
        raise _fail(file_id, f"{where}: {exc}") from exc


def _case(file_id: str, hit: Mapping[str, Any], expected_case: str | None) -> Mapping[str, Any]:
    """The hit's case; with several, the one whose submitter_id is ``expected_case``."""
    cases = _list(file_id, hit, "cases", "")
    if not cases:
        raise _fail(file_id, "hit lacks required field cases (no case attached)")
    if len(cases) == 1:
        return cases[0]
    if expected_case is not None:
        chosen = [c for c in cases if str(c.get("submitter_id", "")).upper() == expected_case]
        if len(chosen) == 1:
            return chosen[0]
    ids = [c.get("submitter_id") for c in cases]
    raise _fail(file_id, f"hit has {len(cases)} cases {ids!r}; cannot tell which one it belongs to")


def _case_barcode(file_id: str, case: Mapping[str, Any], from_file: str, source: str) -> str:
    """Case barcode from ``cases[].submitter_id``, checked against the file's own barcode."""
    text = _opt_str(file_id, case, "submitter_id", "cases[].")
    if text is None:
        return from_file
    parsed = _barcode(file_id, text, "case", "cases[].submitter_id").text
    if parsed != from_file:
        raise _fail(
            file_id, f"{source} belongs to case {from_file}, but the hit's case is {parsed}"
        )
    return parsed


def _site(file_id: str, case: Mapping[str, Any], tss: str) -> tuple[str | None, str | None]:
    site = _sub(file_id, case, "tissue_source_site", "cases[].")
    code = _opt_str(file_id, site, "code", "cases[].tissue_source_site.")
    if code is not None and code.upper() != tss:
        raise _fail(
            file_id, f"barcode tissue source site is {tss}, but the hit's site code is {code!r}"
        )
    name = _opt_str(file_id, site, "name", "cases[].tissue_source_site.")
    return (code.upper() if code else None), name


def _project(file_id: str, case: Mapping[str, Any]) -> str | None:
    return _opt_str(file_id, _sub(file_id, case, "project", "cases[]."), "project_id", "cases[].")


def _sample_type(
    file_id: str, sample: Mapping[str, Any] | None, code: str, what: str
) -> tuple[str, str | None]:
    """(sample_type_code, sample_type) with ``sample_type_id`` checked against the barcode."""
    if sample is None:
        return code, SAMPLE_TYPE_NAMES.get(code)
    type_id = sample.get("sample_type_id")
    if type_id is not None and str(type_id).zfill(2) != code:
        raise _fail(
            file_id,
            f"{what} has sample type code {code}, but the hit's sample "
            f"{sample.get('submitter_id')!r} has sample_type_id {type_id!r}",
        )
    name = _opt_str(file_id, sample, "sample_type", "cases[].samples[].")
    return code, name or SAMPLE_TYPE_NAMES.get(code)


@dataclass(frozen=True)
class SlideFile:
    """One diagnostic slide image file; the sample comes from the barcode in its file name."""

    file_id: str
    file_name: str
    md5: str | None
    size: int | None
    state: str | None
    case_id: str | None
    case_barcode: str
    slide_barcode: str
    sample_barcode: str
    sample_type: str | None
    sample_type_code: str
    site_code: str | None
    site_name: str | None
    project_id: str | None

    @property
    def barcode(self) -> TCGABarcode:
        return parse_barcode(self.slide_barcode)

    @classmethod
    def from_hit(cls, hit: Mapping[str, Any]) -> SlideFile:
        file_id = _hit_file_id(hit)
        file_name = _req_str(file_id, hit, "file_name", "")
        try:
            slide_barcode = slide_barcode_from_file_name(file_name)
        except BarcodeError as exc:
            raise _fail(file_id, str(exc)) from exc
        bc = parse_barcode(slide_barcode)
        assert bc.sample is not None and bc.sample_type_code is not None  # a slide barcode
        case = _case(file_id, hit, bc.case)
        case_barcode = _case_barcode(file_id, case, bc.case, f"slide {slide_barcode}")
        sample = _slide_sample(file_id, case, bc)
        code, sample_type = _sample_type(file_id, sample, bc.sample_type_code, slide_barcode)
        site_code, site_name = _site(file_id, case, bc.tss)
        return cls(
            file_id=file_id,
            file_name=file_name,
            md5=_md5(file_id, hit),
            size=_size(file_id, hit),
            state=_opt_str(file_id, hit, "state", ""),
            case_id=_opt_str(file_id, case, "case_id", "cases[]."),
            case_barcode=case_barcode,
            slide_barcode=slide_barcode,
            sample_barcode=bc.sample,
            sample_type=sample_type,
            sample_type_code=code,
            site_code=site_code,
            site_name=site_name,
            project_id=_project(file_id, case),
        )


def _slide_sample(
    file_id: str, case: Mapping[str, Any], bc: TCGABarcode
) -> Mapping[str, Any] | None:
    """The hit's sample for this slide: the barcode's sample, else one of the same type code.

    DX slides usually hang off a ``01Z`` sample, but a hit may list the case's other samples too
    (``01A``, ``10A``); a listed sample of another type only is a contradiction.
    """
    samples = _list(file_id, case, "samples", "cases[].")
    if not samples:
        return None
    names = [str(s.get("submitter_id") or "").upper() for s in samples]
    for sample, name in zip(samples, names, strict=True):
        if name == bc.sample:
            return sample
    same_code = sorted((name, i) for i, name in enumerate(names) if _same_sample_type(name, bc))
    if same_code:  # e.g. slide 01Z listed under sample 01A: same case and type, other vial
        return samples[same_code[0][1]]
    raise _fail(
        file_id,
        f"slide {bc.text} is from sample {bc.sample}, but the hit lists only samples {names!r}",
    )


def _same_sample_type(name: str, bc: TCGABarcode) -> bool:
    try:
        other = parse_barcode(name)
    except BarcodeError:
        return False
    return other.case == bc.case and other.sample_type_code == bc.sample_type_code


@dataclass(frozen=True)
class ExpressionFile:
    """One STAR-Counts gene expression file and the aliquot it was measured on."""

    file_id: str
    file_name: str
    md5: str | None
    size: int | None
    case_id: str | None
    case_barcode: str
    sample_barcode: str
    sample_type: str | None
    sample_type_code: str
    aliquot_id: str | None
    aliquot_barcode: str | None
    is_ffpe: bool | None
    preservation_method: str | None
    workflow_type: str | None
    project_id: str | None

    @property
    def aliquot(self) -> TCGABarcode | None:
        return parse_barcode(self.aliquot_barcode) if self.aliquot_barcode else None

    @property
    def is_ffpe_like(self) -> bool | None:
        """True if flagged FFPE or preserved as FFPE; None when neither field is known."""
        method = (self.preservation_method or "").upper()
        if self.is_ffpe is True or method == "FFPE":
            return True
        if self.is_ffpe is False or method:
            return False
        return None

    @classmethod
    def from_hit(cls, hit: Mapping[str, Any]) -> ExpressionFile:
        file_id = _hit_file_id(hit)
        file_name = _req_str(file_id, hit, "file_name", "")
        case = _case(file_id, hit, None)
        sample, aliquot = _expression_sample(file_id, case)

        aliquot_bc = None
        aliquot_id = None
        if aliquot is not None:
            text = _req_str(file_id, aliquot, "submitter_id", "cases[].samples[]...aliquots[].")
            aliquot_bc = _barcode(file_id, text, "aliquot", "aliquot submitter_id")
            aliquot_id = _opt_str(file_id, aliquot, "aliquot_id", "...aliquots[].")
        sample_text = _opt_str(file_id, sample, "submitter_id", "cases[].samples[].")
        if sample_text is not None:
            sample_bc = _barcode(file_id, sample_text, "sample", "sample submitter_id")
            if aliquot_bc is not None and aliquot_bc.sample != sample_bc.text:
                raise _fail(
                    file_id,
                    f"aliquot {aliquot_bc.text} is not from the hit's sample {sample_bc.text}",
                )
        elif aliquot_bc is not None:
            sample_bc = parse_barcode(aliquot_bc.sample or "")
        else:
            raise _fail(file_id, "hit lacks cases[].samples[].submitter_id and any aliquot")
        assert sample_bc.sample is not None and sample_bc.sample_type_code is not None
        what = f"sample {sample_bc.text}"
        code, sample_type = _sample_type(file_id, sample, sample_bc.sample_type_code, what)
        analysis = _sub(file_id, hit, "analysis", "")
        return cls(
            file_id=file_id,
            file_name=file_name,
            md5=_md5(file_id, hit),
            size=_size(file_id, hit),
            case_id=_opt_str(file_id, case, "case_id", "cases[]."),
            case_barcode=_case_barcode(file_id, case, sample_bc.case, what),
            sample_barcode=sample_bc.sample,
            sample_type=sample_type,
            sample_type_code=code,
            aliquot_id=aliquot_id,
            aliquot_barcode=aliquot_bc.text if aliquot_bc else None,
            is_ffpe=_bool(file_id, sample, "is_ffpe", "cases[].samples[]."),
            preservation_method=_opt_str(
                file_id, sample, "preservation_method", "cases[].samples[]."
            ),
            workflow_type=_opt_str(file_id, analysis, "workflow_type", "analysis."),
            project_id=_project(file_id, case),
        )


def _expression_sample(
    file_id: str, case: Mapping[str, Any]
) -> tuple[Mapping[str, Any], Mapping[str, Any] | None]:
    """(sample, aliquot) of an RNA file: the one aliquot in the hit and the sample holding it.

    A /files hit lists only the biospecimen path of that file, so one aliquot is expected; when the
    hit lists several samples, the aliquot decides which is the file's. Several distinct aliquots
    are ambiguous and rejected rather than guessed.
    """
    samples = _list(file_id, case, "samples", "cases[].")
    found: dict[str, tuple[Mapping[str, Any], Mapping[str, Any]]] = {}
    for sample in samples:
        for portion in _list(file_id, sample, "portions", "cases[].samples[]."):
            for analyte in _list(file_id, portion, "analytes", "...portions[]."):
                for aliquot in _list(file_id, analyte, "aliquots", "...analytes[]."):
                    key = str(aliquot.get("submitter_id") or aliquot.get("aliquot_id") or "")
                    found.setdefault(key.upper(), (sample, aliquot))
    if len(found) == 1:
        return next(iter(found.values()))
    if len(found) > 1:
        raise _fail(
            file_id, f"hit lists {len(found)} aliquots {sorted(found)!r}; expected the file's one"
        )
    if len(samples) == 1:
        return samples[0], None
    if not samples:
        raise _fail(file_id, "hit lacks required field cases[].samples (no sample attached)")
    names = [s.get("submitter_id") for s in samples]
    raise _fail(file_id, f"hit lists {len(samples)} samples {names!r} and no aliquot to choose")
