"""Parse GDC "augmented STAR gene counts" files (``*.rna_seq.augmented_star_gene_counts.tsv``).

Layout (GDC_API.md 14.1)::

    # gene-model: GENCODE v36
    gene_id  gene_name  gene_type  unstranded  stranded_first  stranded_second  tpm_unstranded ...
    N_unmapped  ...     (four STAR summary rows: empty name, type and normalised columns)
    ENSG00000000003.15  TSPAN6  protein_coding  3231  1634  1597  44.6685  16.8557  23.8956

Rows are indexed by the *unversioned* gene id so a GENCODE bump (``ENSG00000148773.14`` ->
``.15``) does not lose a gene. GENCODE keeps the pseudo-autosomal copies on chrY as separate
genes with ids like ``ENSG00000002586.20_PAR_Y``; dropping only the version keeps them distinct
(``ENSG00000002586_PAR_Y``), so the index stays unique.

Strictness, because a bad value here becomes a wrong training target silently:
every line must have exactly the header's number of fields, counts must be non-negative integers,
normalised values finite non-negative numbers, gene ids unique, and the file must end with a
newline (a download cut mid-line can still leave a valid-looking last number; GDC files always end
with one). Nothing becomes NaN: any violation raises STARCountsError naming the file, the line and
the value.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from histo_renn_dagster.core.errors import MissingGeneError, STARCountsError

TEXT_COLUMNS = ("gene_id", "gene_name", "gene_type")
COUNT_COLUMNS = ("unstranded", "stranded_first", "stranded_second")
NORMALISED_COLUMNS = ("tpm_unstranded", "fpkm_unstranded", "fpkm_uq_unstranded")
COLUMNS = TEXT_COLUMNS + COUNT_COLUMNS + NORMALISED_COLUMNS
SUMMARY_PREFIX = "N_"
TPM_COLUMN = "tpm_unstranded"

# ".<version>" at the end of the id, or just before a "_PAR_Y" suffix. No look-ahead: pandas
# hands this to pyarrow's RE2, which has none.
_VERSION_RE = r"\.\d+((?:_PAR_Y)?)$"
_NUMERIC_COLUMNS = COUNT_COLUMNS + NORMALISED_COLUMNS


def unversioned_gene_id(gene_id: str) -> str:
    """``ENSG00000148773.14`` -> ``ENSG00000148773``; ``ENSG..20_PAR_Y`` -> ``ENSG.._PAR_Y``."""
    return re.sub(_VERSION_RE, r"\1", gene_id)


def _fail(path: Path, problem: str) -> STARCountsError:
    return STARCountsError(f"STAR-Counts file {str(path)!r}: {problem}")


def _decode(path: Path, data: bytes) -> str:
    if not data.strip():
        raise _fail(path, "file is empty")
    if data[:2] == b"\x1f\x8b":
        raise _fail(path, "file is gzip-compressed; expected a plain TSV (decompress it first)")
    head = data.lstrip()[:200].lower()
    if head.startswith(b"<") and (b"<html" in head or b"<!doctype" in head or b"<?xml" in head):
        raise _fail(path, "file is HTML/XML, not a TSV (an error page saved as data?)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(path, f"file is not UTF-8 text ({exc})") from exc
    if not text.endswith("\n"):
        raise _fail(path, "file does not end with a newline (truncated download?)")
    return text.replace("\r\n", "\n")


def _read_header(path: Path, text: str) -> tuple[dict[str, str], int, list[str], int]:
    """Pragmas, the 1-based header line number, header fields, offset of the first data row."""
    pragmas: dict[str, str] = {}
    offset = 0
    line_no = 1
    while text.startswith("#", offset):
        end = text.index("\n", offset)
        key, _, value = text[offset:end].lstrip("#").partition(":")
        pragmas[key.strip()] = value.strip()
        offset, line_no = end + 1, line_no + 1
    if offset == len(text):
        raise _fail(path, "no header line (only comment lines)")
    end = text.index("\n", offset)
    header = text[offset:end].split("\t")
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise _fail(
            path,
            f"header (line {line_no}) lacks column(s) {', '.join(missing)}; found {header[:12]!r}",
        )
    if len(set(header)) != len(header):
        raise _fail(path, f"header (line {line_no}) repeats a column: {header!r}")
    if end + 1 == len(text):
        raise _fail(path, "no data rows after the header")
    return pragmas, line_no, header, end + 1


def _check_field_counts(path: Path, body: str, n_fields: int, first_line: int) -> None:
    """Raise on the first row whose field count differs from the header's.

    A cheap total first (C-speed str.count); the per-line scan runs only when the totals disagree.
    A long row offsetting a short one passes the total, but the long row makes pandas fail and
    ``_diagnose`` then scans every line.
    """
    if body.count("\t") == body.count("\n") * (n_fields - 1):
        return
    _scan_field_counts(path, body, n_fields, first_line)


def _scan_field_counts(path: Path, body: str, n_fields: int, first_line: int) -> None:
    for i, line in enumerate(body.split("\n")[:-1]):
        found = line.count("\t") + 1
        if found != n_fields:
            shown = line if len(line) <= 120 else line[:117] + "..."
            raise _fail(
                path,
                f"line {first_line + i} has {found} field(s), expected {n_fields} "
                f"(truncated or malformed row): {shown!r}",
            )


def _read_table(body: str, header: list[str], *, numeric: bool) -> pd.DataFrame:
    dtypes: dict[str, str] = dict.fromkeys(header, "str")
    if numeric:
        # Only an empty numeric field is missing (the N_ rows' blank columns); text columns keep
        # "" as text, and "NA", "nan" etc. make the float conversion fail -> _diagnose.
        dtypes.update(dict.fromkeys(_NUMERIC_COLUMNS, "float64"))
    return pd.read_csv(
        io.StringIO(body),
        sep="\t",
        header=None,
        names=header,
        dtype=dtypes,  # type: ignore[arg-type]
        keep_default_na=False,
        na_values={c: [""] for c in _NUMERIC_COLUMNS} if numeric else None,
        na_filter=numeric,
        quoting=csv.QUOTE_NONE,
        skip_blank_lines=False,
        engine="c",
    )


def _diagnose(path: Path, body: str, header: list[str], first_line: int) -> STARCountsError:
    """Find the exact row/column behind a pandas parse failure (slow path, errors only)."""
    _scan_field_counts(path, body, len(header), first_line)
    raw = _read_table(body, header, numeric=False)
    summary = raw["gene_id"].str.startswith(SUMMARY_PREFIX).to_numpy()
    for i in range(len(raw)):
        for column in _NUMERIC_COLUMNS:
            value = raw[column].iat[i]
            if summary[i] and (value == "" or column in NORMALISED_COLUMNS):
                continue
            if not _valid_number(value, integer=column in COUNT_COLUMNS):
                return _bad_value(path, first_line + i, raw["gene_id"].iat[i], column, value)
    return _fail(path, "could not be parsed as a tab-separated table")


def _valid_number(value: str, *, integer: bool) -> bool:
    try:
        number = float(value)
    except ValueError:
        return False
    return math.isfinite(number) and number >= 0 and (not integer or number.is_integer())


def _bad_value(path: Path, line_no: int, gene_id: str, column: str, value: str) -> STARCountsError:
    kind = "a non-negative integer" if column in COUNT_COLUMNS else "a finite non-negative number"
    return _fail(
        path, f"line {line_no} ({gene_id!r}): column {column!r} must be {kind}, got {value!r}"
    )


def _check_values(
    path: Path,
    body: str,
    header: list[str],
    frame: pd.DataFrame,
    columns: tuple[str, ...],
    first_line: int,
) -> None:
    """Counts must be non-negative integers, normalised values finite and non-negative."""
    for column in columns:
        values = frame[column].to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values) | (values < 0)
        if column in COUNT_COLUMNS:
            bad |= values != np.floor(np.where(np.isfinite(values), values, 0.0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            row = int(frame.index[i])  # position in body: frame keeps read_csv's RangeIndex
            value = body.split("\n")[row].split("\t")[header.index(column)]
            raise _bad_value(path, first_line + row, frame["gene_id"].iat[i], column, value)


def read_star_counts(path: str | Path) -> pd.DataFrame:
    """Read one augmented STAR-Counts file into a validated DataFrame.

    Index: unversioned gene id (name ``gene_id``); columns: ``gene_id_versioned``, ``gene_name``,
    ``gene_type``, the three int64 count columns and the three float64 normalised columns. The
    four ``N_`` summary rows are dropped from the frame and kept in ``attrs["star_summary"]``
    (``{"N_unmapped": {"unstranded": ..., ...}, ...}``); ``attrs["gene_model"]`` holds the pragma
    value (``"GENCODE v36"``) or None, ``attrs["source"]`` the path.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc})") from exc
    text = _decode(path, data)
    pragmas, header_line, header, body_start = _read_header(path, text)
    body = text[body_start:]
    first_line = header_line + 1
    _check_field_counts(path, body, len(header), first_line)
    try:
        frame = _read_table(body, header, numeric=True)
    except ValueError:  # pandas' ParserError is a ValueError too
        raise _diagnose(path, body, header, first_line) from None

    line_numbers = first_line + np.arange(len(frame))
    gene_ids = frame["gene_id"]
    empty = (gene_ids == "").to_numpy()
    if empty.any():
        raise _fail(path, f"line {line_numbers[np.flatnonzero(empty)[0]]} has an empty gene_id")
    is_summary = gene_ids.str.startswith(SUMMARY_PREFIX).to_numpy()

    summary_rows = frame.loc[is_summary]
    _check_values(path, body, header, summary_rows, COUNT_COLUMNS, first_line)
    summary = {
        row_id: {c: int(summary_rows[c].iat[i]) for c in COUNT_COLUMNS}
        for i, row_id in enumerate(summary_rows["gene_id"])
    }

    genes = frame.loc[~is_summary]
    if genes.empty:
        raise _fail(path, "no gene rows (only N_ summary rows)")
    gene_lines = line_numbers[~is_summary]
    _check_values(path, body, header, genes, _NUMERIC_COLUMNS, first_line)

    index = pd.Index(genes["gene_id"].str.replace(_VERSION_RE, r"\1", regex=True), name="gene_id")
    duplicated = index.duplicated(keep=False)
    if duplicated.any():
        where = np.flatnonzero(duplicated)[:4]
        described = ", ".join(f"{genes['gene_id'].iat[i]!r} (line {gene_lines[i]})" for i in where)
        raise _fail(path, f"gene id {index[where[0]]!r} occurs more than once: {described}")

    # Column selection keeps pandas' own string arrays (no per-row conversion to objects).
    out = genes[list(COLUMNS)].rename(columns={"gene_id": "gene_id_versioned"})
    out = out.astype(
        {**dict.fromkeys(COUNT_COLUMNS, "int64"), **dict.fromkeys(NORMALISED_COLUMNS, "float64")}
    )
    out.index = index
    out.attrs["source"] = str(path)
    out.attrs["gene_model"] = pragmas.get("gene-model")
    out.attrs["star_summary"] = summary
    return out


def gene_tpms(path: str | Path, gene_ids: Iterable[str]) -> dict[str, float]:
    """``tpm_unstranded`` of each requested gene, keyed by unversioned id.

    Requested ids may be versioned or not (``ENSG00000148773.14`` and ``ENSG00000148773`` both
    find MKI67). Raises MissingGeneError naming the file and every absent gene.
    """
    wanted = list(dict.fromkeys(unversioned_gene_id(g) for g in gene_ids))
    frame = read_star_counts(path)
    missing = [g for g in wanted if g not in frame.index]
    if missing:
        raise MissingGeneError(
            f"STAR-Counts file {str(path)!r}: gene(s) {', '.join(missing)} not found "
            f"among {len(frame)} genes"
        )
    tpm = frame[TPM_COLUMN]
    return {g: float(tpm.at[g]) for g in wanted}
