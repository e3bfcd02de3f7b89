from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from histo_renn_dagster.core.errors import MissingGeneError, STARCountsError
from histo_renn_dagster.core.gdc.star_counts import (
    COLUMNS,
    gene_tpms,
    read_star_counts,
    unversioned_gene_id,
)

MKI67 = "ENSG00000148773"
PRAGMA = "# gene-model: GENCODE v36"
HEADER = "\t".join(COLUMNS)
SUMMARY = [
    "N_unmapped\t\t\t8120268\t8120268\t8120268\t\t\t",
    "N_multimapping\t\t\t4402480\t4402480\t4402480\t\t\t",
    "N_noFeature\t\t\t1446120\t24573336\t24781939\t\t\t",
    "N_ambiguous\t\t\t5551010\t1476463\t1462076\t\t\t",
]
GENES = [
    "ENSG00000000003.15\tTSPAN6\tprotein_coding\t3231\t1634\t1597\t44.6685\t16.8557\t23.8956",
    "ENSG00000000005.6\tTNMD\tprotein_coding\t0\t0\t0\t0.0000\t0.0000\t0.0000",
    "ENSG00000002586.20\tCD99\tprotein_coding\t500\t250\t250\t12.5000\t5.0000\t6.0000",
    "ENSG00000002586.20_PAR_Y\tCD99\tprotein_coding\t0\t0\t0\t0.0000\t0.0000\t0.0000",
    "ENSG00000148773.14\tMKI67\tprotein_coding\t990\t3\t987\t7.2793\t3.3121\t3.1446",
]


def _write(tmp_path: Path, lines: list[str], *, name: str = "x.tsv", end: str = "\n") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + end, encoding="utf-8")
    return path


def _file(tmp_path: Path, genes: list[str] | None = None, **kwargs: str) -> Path:
    return _write(tmp_path, [PRAGMA, HEADER, *SUMMARY, *(GENES if genes is None else genes)])


def _error(path: Path) -> str:
    with pytest.raises(STARCountsError) as info:
        read_star_counts(path)
    message = str(info.value)
    assert str(path) in message  # every error names the file
    return message


def test_unversioned_gene_id() -> None:
    assert unversioned_gene_id("ENSG00000148773.14") == MKI67
    assert unversioned_gene_id(MKI67) == MKI67
    assert unversioned_gene_id("ENSG00000002586.20_PAR_Y") == "ENSG00000002586_PAR_Y"


def test_layout_is_parsed_with_types_and_summary(tmp_path: Path) -> None:
    frame = read_star_counts(_file(tmp_path))
    assert list(frame.index) == [
        "ENSG00000000003",
        "ENSG00000000005",
        "ENSG00000002586",
        "ENSG00000002586_PAR_Y",
        MKI67,
    ]
    assert frame.index.name == "gene_id"
    assert not frame.index.str.startswith("N_").any()
    assert frame.at[MKI67, "gene_id_versioned"] == "ENSG00000148773.14"
    assert frame.at[MKI67, "gene_name"] == "MKI67"
    assert frame.at[MKI67, "tpm_unstranded"] == pytest.approx(7.2793)
    assert frame.at[MKI67, "unstranded"] == 990
    assert frame["unstranded"].dtype == np.int64
    assert frame["tpm_unstranded"].dtype == np.float64
    assert not frame[["tpm_unstranded", "unstranded"]].isna().any().any()
    assert frame.attrs["gene_model"] == "GENCODE v36"
    assert frame.attrs["star_summary"]["N_noFeature"] == {
        "unstranded": 1446120,
        "stranded_first": 24573336,
        "stranded_second": 24781939,
    }


def test_crlf_and_missing_pragma_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "crlf.tsv"
    path.write_bytes(("\r\n".join([HEADER, *SUMMARY, *GENES]) + "\r\n").encode())
    frame = read_star_counts(path)
    assert frame.at[MKI67, "fpkm_uq_unstranded"] == pytest.approx(3.1446)
    assert frame.attrs["gene_model"] is None


def test_gene_tpms_versioned_or_not(tmp_path: Path) -> None:
    path = _file(tmp_path)
    tpms = gene_tpms(path, ["ENSG00000148773.14", "ENSG00000000003", MKI67])
    assert tpms == {MKI67: pytest.approx(7.2793), "ENSG00000000003": pytest.approx(44.6685)}
    # a GENCODE bump in the request still finds the gene
    assert gene_tpms(path, ["ENSG00000148773.15"]) == {MKI67: pytest.approx(7.2793)}


def test_missing_gene_names_file_and_gene(tmp_path: Path) -> None:
    path = _file(tmp_path)
    with pytest.raises(MissingGeneError) as info:
        gene_tpms(path, [MKI67, "ENSG00000141736.14"])
    assert "ENSG00000141736" in str(info.value)
    assert str(path) in str(info.value)
    assert isinstance(info.value, KeyError)


def test_real_gdc_file_with_4_decimals(shared_data: Path) -> None:
    star = shared_data / "gdc" / "star_counts"
    summary = star / (
        "ag48665__TCGA-LUAD_074b0792__augmented_star_gene_counts__"
        "summary_rows_plus_MKI67_ERBB2_ESR1_PGR_TP53.tsv"
    )
    assert gene_tpms(summary, [MKI67]) == {MKI67: 7.2793}
    frame = read_star_counts(summary)
    assert len(frame) == 5
    assert frame.at["ENSG00000141736", "tpm_unstranded"] == pytest.approx(122.4130)
    assert frame.attrs["star_summary"]["N_unmapped"]["unstranded"] == 43731666

    first = read_star_counts(
        star / "ag48665__TCGA-LUAD_074b0792__augmented_star_gene_counts__first206lines.tsv"
    )
    assert len(first) == 200
    assert frame.attrs["gene_model"] == first.attrs["gene_model"] == "GENCODE v36"
    assert first.at["ENSG00000000003", "tpm_unstranded"] == pytest.approx(16.47)
    assert first.at["ENSG00000000003", "stranded_second"] == 791
    assert "ENSG00000002586_PAR_Y" in first.index and "ENSG00000002586" in first.index
    with pytest.raises(MissingGeneError):
        gene_tpms(
            star / "gdc-rnaseq-tool__test_set_1.final.augmented_star_gene_counts.tsv", [MKI67]
        )


def test_real_gdc_tool_file_with_full_precision(shared_data: Path) -> None:
    path = (
        shared_data / "gdc" / "star_counts" / "gdc-rnaseq-tool__test_set_1.final."
        "augmented_star_gene_counts.tsv"
    )
    frame = read_star_counts(path)
    assert len(frame) == 96
    assert frame.at["ENSG00000000003", "tpm_unstranded"] == 92548.07751878405
    assert frame.at["ENSG00000000457", "tpm_unstranded"] == 0.0
    # TPM sums to one million over the genes (the tool's own formula)
    assert frame["tpm_unstranded"].sum() == pytest.approx(1e6, rel=1e-9)


def test_raw_star_reads_per_gene_is_not_accepted(shared_data: Path) -> None:
    path = (
        shared_data
        / "gdc"
        / "star_counts"
        / "gdc-rnaseq-tool__test_set_1.counts.star_ReadsPerGene.tsv"
    )
    assert "lacks column(s) gene_id" in _error(path)


def test_sixty_thousand_rows(tmp_path: Path) -> None:
    genes = [
        f"ENSG{i:011d}.{i % 20 + 1}\tG{i}\tprotein_coding\t{i}\t0\t{i}\t{i / 7:.4f}\t1.0000\t2.0000"
        for i in range(60660)
    ]
    frame = read_star_counts(_file(tmp_path, genes))
    assert len(frame) == 60660
    assert frame.at["ENSG00000060659", "tpm_unstranded"] == pytest.approx(round(60659 / 7, 4))


def test_empty_and_whitespace_files(tmp_path: Path) -> None:
    assert "empty" in _error(_write(tmp_path, [], end=""))
    assert "empty" in _error(_write(tmp_path, ["", "  "], name="ws.tsv"))


def test_html_error_page(tmp_path: Path) -> None:
    page = ["<!DOCTYPE html>", "<html><body>502 Bad Gateway</body></html>"]
    assert "HTML" in _error(_write(tmp_path, page))


def test_gzip_file(tmp_path: Path) -> None:
    path = tmp_path / "x.tsv.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00rest")
    assert "gzip" in _error(path)


def test_only_pragma_or_no_rows(tmp_path: Path) -> None:
    assert "no header" in _error(_write(tmp_path, [PRAGMA]))
    assert "no data rows" in _error(_write(tmp_path, [PRAGMA, HEADER], name="h.tsv"))
    assert "no gene rows" in _error(_write(tmp_path, [PRAGMA, HEADER, *SUMMARY], name="s.tsv"))


def test_missing_header_columns(tmp_path: Path) -> None:
    header = HEADER.replace("\ttpm_unstranded", "")
    genes = [g.rsplit("\t", 1)[0] for g in GENES]
    message = _error(_write(tmp_path, [PRAGMA, header, *genes]))
    assert "tpm_unstranded" in message and "line 2" in message


def test_row_with_fewer_fields(tmp_path: Path) -> None:
    genes = [*GENES[:2], "ENSG00000000419.13\tDPM1\tprotein_coding\t1083\t556", *GENES[2:]]
    message = _error(_file(tmp_path, genes))
    assert "line 9 has 5 field(s), expected 9" in message
    assert "DPM1" in message


def test_row_with_more_fields_offset_by_a_shorter_one(tmp_path: Path) -> None:
    # the total tab count is right, so only the per-line scan can find them
    long_row = GENES[0] + "\textra"
    short_row = GENES[1].rsplit("\t", 1)[0]
    message = _error(_file(tmp_path, [long_row, short_row, *GENES[2:]]))
    assert "line 7 has 10 field(s), expected 9" in message


def test_cut_mid_line_without_newline(tmp_path: Path) -> None:
    lines = [PRAGMA, HEADER, *SUMMARY, *GENES]
    path = tmp_path / "cut.tsv"
    path.write_text("\n".join(lines)[:-3], encoding="utf-8")
    assert "does not end with a newline" in _error(path)


@pytest.mark.parametrize("value", ["abc", "", "NA", "nan", "inf", "-1.0", "1,5"])
def test_bad_tpm_values(tmp_path: Path, value: str) -> None:
    bad = GENES[4].split("\t")
    bad[6] = value
    message = _error(_file(tmp_path, [*GENES[:4], "\t".join(bad)]))
    assert "line 11" in message
    assert "ENSG00000148773.14" in message
    assert "'tpm_unstranded'" in message
    assert repr(value) in message


@pytest.mark.parametrize("value", ["3.5", "x", "-2"])
def test_bad_counts(tmp_path: Path, value: str) -> None:
    bad = GENES[0].split("\t")
    bad[3] = value
    message = _error(_file(tmp_path, ["\t".join(bad), *GENES[1:]]))
    assert "line 7" in message and "'unstranded'" in message and repr(value) in message


def test_bad_summary_count(tmp_path: Path) -> None:
    summary = [*SUMMARY[:3], "N_ambiguous\t\t\t\t1476463\t1462076\t\t\t"]
    path = _write(tmp_path, [PRAGMA, HEADER, *summary, *GENES])
    message = _error(path)
    assert "line 6" in message and "N_ambiguous" in message


def test_duplicated_gene_id(tmp_path: Path) -> None:
    message = _error(
        _file(tmp_path, [*GENES, "ENSG00000148773.15\tMKI67\tprotein_coding" + "\t1" * 6])
    )
    assert "'ENSG00000148773' occurs more than once" in message
    assert "line 11" in message and "line 12" in message


def test_empty_gene_id(tmp_path: Path) -> None:
    message = _error(_file(tmp_path, [*GENES, "\tX\tprotein_coding" + "\t1" * 6]))
    assert "line 12 has an empty gene_id" in message


def test_blank_line_in_the_middle(tmp_path: Path) -> None:
    assert "line 8 has 1 field(s)" in _error(_file(tmp_path, [GENES[0], "", *GENES[1:]]))


def test_missing_file(tmp_path: Path) -> None:
    assert "cannot be read" in _error(tmp_path / "absent.tsv")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.tsv"
    path.write_bytes(("\n".join([PRAGMA, HEADER, *GENES]) + "\n").encode() + b"\xff\xfe\n")
    assert "not UTF-8" in _error(path)
