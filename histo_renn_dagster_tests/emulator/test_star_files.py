"""Emulated STAR-Counts files: real GDC layout, self-consistent numbers, deterministic bytes."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pytest

from histo_renn_dagster.core.errors import CatalogueDataError
from histo_renn_dagster.core.gdc.star_counts import gene_tpms, read_star_counts
from histo_renn_dagster.emulator.star_files import (
    HEADER,
    SUMMARY_ROWS,
    StarCountsSpec,
    load_gene_table,
    normalise_counts,
    render_star_counts,
    write_star_counts,
)

MKI67 = "ENSG00000148773.14"
FOUR_DECIMALS = re.compile(r"^\d+\.\d{4}$")


def _rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("ascii")), delimiter="\t"))


@pytest.fixture(scope="module")
def sample() -> bytes:
    return render_star_counts(StarCountsSpec.of("file-a", {MKI67: 22.687}))


def test_layout_matches_the_real_gdc_file(sample: bytes) -> None:
    rows = _rows(sample)
    assert rows[0] == ["# gene-model: GENCODE v36"]
    assert tuple(rows[1]) == HEADER
    assert [r[0] for r in rows[2:6]] == list(SUMMARY_ROWS)
    for row in rows[2:6]:
        assert row[1:3] == ["", ""] and row[6:] == ["", "", ""]
        assert all(v.isdigit() for v in row[3:6])
    assert rows[2][3] == rows[2][4] == rows[2][5]  # N_unmapped is strand-independent
    genes = rows[6:]
    ids = [r[0] for r in genes]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == len(load_gene_table().gene_ids)
    assert all(re.fullmatch(r"ENSG\d{11}\.\d+(_PAR_Y)?", g) for g in ids)
    assert all(len(r) == 9 for r in genes)
    for row in genes:
        assert all(v.isdigit() for v in row[3:6]), row
        assert all(FOUR_DECIMALS.match(v) for v in row[6:]), row
    assert sample.endswith(b"\n") and b"\r" not in sample


def test_tpm_sums_to_a_million_and_pinned_value_is_exact(sample: bytes, tmp_path: Path) -> None:
    genes = _rows(sample)[6:]
    total = sum(float(r[6]) for r in genes)
    assert abs(total - 1e6) <= 0.00005 * len(genes) + 1e-6
    mki67 = next(r for r in genes if r[0] == MKI67)
    assert mki67[1] == "MKI67" and mki67[6] == "22.6870"
    path = tmp_path / "x.rna_seq.augmented_star_gene_counts.tsv"
    path.write_bytes(sample)
    assert gene_tpms(path, [MKI67, "ENSG00000141736"]) == {
        "ENSG00000148773": 22.687,
        "ENSG00000141736": pytest.approx(float(next(r[6] for r in genes if r[1] == "ERBB2"))),
    }


def test_counts_and_normalised_columns_follow_the_tools_formulas(sample: bytes, tmp_path: Path):
    path = tmp_path / "f.tsv"
    path.write_bytes(sample)
    frame = read_star_counts(path)
    table = load_gene_table()
    length = np.asarray(table.exon_lengths)
    counts = frame["unstranded"].to_numpy(dtype=float)
    rate = counts / length
    tpm = rate * 1e6 / rate.sum()
    big = counts >= 50
    assert np.allclose(tpm[big], frame["tpm_unstranded"].to_numpy()[big], rtol=0.02)
    assert ((counts > 0) == (frame["tpm_unstranded"].to_numpy() > 0)).all()
    n_coding = counts[table.protein_coding].sum()
    fpkm = counts * 1e9 / (n_coding * length)
    assert np.allclose(fpkm, frame["fpkm_unstranded"], atol=5.1e-5)
    upper = counts[table.autosomal_coding]
    uq = np.percentile(upper[upper > 0], 75)
    fpkm_uq = counts * 1e9 / (uq * table.autosomal_coding.sum() * length)
    assert np.allclose(fpkm_uq, frame["fpkm_uq_unstranded"], atol=5.1e-5)
    # Reverse-stranded library, as in the real file: nearly all reads on the second strand.
    assert frame["stranded_first"].sum() < 0.05 * frame["unstranded"].sum()


def test_bytes_are_deterministic_per_seed_key(sample: bytes) -> None:
    assert render_star_counts(StarCountsSpec.of("file-a", {MKI67: 22.687})) == sample
    assert render_star_counts(StarCountsSpec.of("file-b", {MKI67: 22.687})) != sample


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path, sample: bytes) -> None:
    target = tmp_path / "out.tsv"
    write_star_counts(target, StarCountsSpec.of("file-a", {MKI67: 22.687}))
    assert target.read_bytes() == sample
    assert [p.name for p in tmp_path.iterdir()] == ["out.tsv"]


def test_bad_pins_are_rejected_by_name() -> None:
    with pytest.raises(CatalogueDataError, match=r"ENSG00000000000\.1"):
        render_star_counts(StarCountsSpec.of("x", {"ENSG00000000000.1": 1.0}))
    with pytest.raises(CatalogueDataError, match="impossible"):
        render_star_counts(StarCountsSpec.of("x", {MKI67: 2e6}))


def test_real_gene_rows_agree_with_the_shared_sources(shared_data: Path) -> None:
    info_path = shared_data / "gdc/star_counts/gdc-rnaseq-tool__test_set_1.gene_info.tsv"
    with info_path.open() as handle:
        info = {r["gene_id"]: r for r in csv.DictReader(handle, delimiter="\t")}
    table = load_gene_table()
    for gene_id, row in info.items():
        i = table.index(gene_id)
        assert table.gene_names[i] == row["gene_name"]
        assert table.chromosomes[i] == row["chromosome"]
        assert table.exon_lengths[i] == int(row["total_exon_length"])
    folder = shared_data / "gdc/star_counts"
    tspan6 = next(
        r
        for r in _rows(next(folder.glob("*first206lines.tsv")).read_bytes())
        if len(r) > 1 and r[1] == "TSPAN6"
    )
    # In a real file C / (TPM * L) is one constant; the derived lengths must reproduce it.
    constant = int(tspan6[3]) / (float(tspan6[6]) * table.exon_lengths[table.index(tspan6[0])])
    for row in _rows(next(folder.glob("*summary_rows_plus_MKI67*.tsv")).read_bytes())[6:]:
        i = table.index(row[0])
        assert (table.gene_names[i], table.gene_types[i]) == (row[1], row[2])
        assert table.reference_tpm[i] == pytest.approx(float(row[6]))
        ratio = int(row[3]) / (float(row[6]) * table.exon_lengths[i])
        assert ratio == pytest.approx(constant, rel=2e-3)


def test_normalisation_reproduces_the_gdc_tools_expected_output(shared_data: Path) -> None:
    folder = shared_data / "gdc/star_counts"
    expected = _rows(
        (folder / "gdc-rnaseq-tool__test_set_1.final.augmented_star_gene_counts.tsv").read_bytes()
    )
    with (folder / "gdc-rnaseq-tool__test_set_1.gene_info.tsv").open() as handle:
        info = {r["gene_id"]: r for r in csv.DictReader(handle, delimiter="\t")}
    genes = [r for r in expected[2:] if not r[0].startswith("N_")]
    counts = np.array([int(r[3]) for r in genes])
    lengths = np.array([float(info[r[0]]["total_exon_length"]) for r in genes])
    coding = np.array([info[r[0]]["gene_type"] == "protein_coding" for r in genes])
    autosomal = coding & np.array(
        [info[r[0]]["chromosome"] not in ("chrX", "chrY", "chrM") for r in genes]
    )
    for column, ours in zip(
        (6, 7, 8), normalise_counts(counts, lengths, coding, autosomal), strict=True
    ):
        assert np.allclose(ours, [float(r[column]) for r in genes], rtol=1e-9, atol=1e-9)
