"""Expression table: tumour-only selection, the multi-aliquot rule, parsing and bad files."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from histo_renn_dagster.core.cohort.expression import (
    MKI67,
    ExpressionSelection,
    build_expression_table,
    fetch_expression_files,
    resolve_genes,
    select_tumour_expression,
)
from histo_renn_dagster.core.errors import CohortError, DownloadError
from histo_renn_dagster.core.gdc.records import ExpressionFile
from histo_renn_dagster.core.gdc.star_counts import gene_tpms


@pytest.fixture(scope="module")
def rna(fixture_catalogue) -> list[ExpressionFile]:
    return [
        ExpressionFile.from_hit(d) for d in fixture_catalogue.files if d["data_format"] == "TSV"
    ]


@pytest.fixture(scope="module")
def star_paths(fixture_catalogue, rna) -> dict[str, Path]:
    return {r.file_id: fixture_catalogue.blob(r.file_id).path() for r in rna}


def _by_sample(selection: ExpressionSelection) -> dict[str, object]:
    return {s.sample_key: s for s in selection.samples}


def test_resolve_genes_always_starts_with_mki67():
    genes = resolve_genes(["erbb2", "ENSG00000091831.24", "MYC=ENSG00000136997", "MKI67"])
    assert genes[0] == MKI67
    assert [(g.symbol, g.gene_id) for g in genes[1:]] == [
        ("ERBB2", "ENSG00000141736"),
        ("ENSG00000091831", "ENSG00000091831"),
        ("MYC", "ENSG00000136997"),
    ]
    assert [g.column for g in resolve_genes([])] == ["tpm_MKI67"]
    for bad in ("NOTAGENE", "X=ENSG1", "ERBB2=ENSG00000148773"):
        with pytest.raises(CohortError, match="gene"):
            resolve_genes([bad])


def test_selection_drops_normals_and_resolves_aliquots(rna):
    selection = select_tumour_expression(rna)
    samples = _by_sample(selection)
    assert sorted(samples) == [
        "TCGA-A2-A25D-01",
        "TCGA-A7-A13D-01",
        "TCGA-AO-A0J6-01",
        "TCGA-BH-A0EA-01",
        "TCGA-D8-A1XK-01",
    ]
    assert selection.normals_dropped == 1  # TCGA-BH-A0EA-11A
    assert selection.duplicates_resolved == 1
    a13d = samples["TCGA-A7-A13D-01"]
    assert a13d.chosen.aliquot_barcode == "TCGA-A7-A13D-01A-13R-A12P-07"  # frozen, not FFPE 01B
    assert a13d.rule == "non_ffpe"
    assert [c.aliquot_barcode for c in a13d.candidates][1] == "TCGA-A7-A13D-01B-04R-A277-07"
    assert samples["TCGA-BH-A0EA-01"].chosen.sample_type_code == "01"
    assert all(s.rule == "single_candidate" for k, s in samples.items() if k != "TCGA-A7-A13D-01")
    # Input order never changes the choice.
    assert select_tumour_expression(list(reversed(rna))) == selection


def test_selection_rejects_a_file_listed_twice(rna):
    with pytest.raises(CohortError, match="listed twice"):
        select_tumour_expression([rna[0], rna[0]])


def test_expression_table_values_are_the_chosen_files_tpms(rna, star_paths):
    selection = select_tumour_expression(rna)
    genes = resolve_genes(["ERBB2", "ESR1", "PGR"])
    table = build_expression_table(selection, star_paths, genes)
    frame = table.frame.set_index("sample_key")
    assert len(frame) == 5 and not table.exclusions
    for choice in selection.samples:
        expected = gene_tpms(star_paths[choice.chosen.file_id], [g.gene_id for g in genes])
        row = frame.loc[choice.sample_key]
        assert row["file_id"] == choice.chosen.file_id
        assert [row[g.column] for g in genes] == [expected[g.gene_id] for g in genes]
    assert frame.loc["TCGA-A7-A13D-01", "n_candidates"] == 2
    summary = table.summary()
    assert summary["normals_dropped"] == 1 and summary["duplicates_resolved"] == 1
    assert summary["cases"] == 5 and summary["tumour_samples"] == 5


def _rewrite(path: Path, dest: Path, edit) -> Path:
    lines = path.read_text().splitlines(keepends=True)
    dest.write_text("".join(edit(lines)))
    return dest


def test_bad_star_files_are_excluded_with_reasons(rna, star_paths, tmp_path):
    selection = select_tumour_expression(rna)
    ids = {s.sample_key: s.chosen.file_id for s in selection.samples}
    paths = dict(star_paths)

    def drop_mki67(lines):
        return [ln for ln in lines if not ln.startswith(MKI67.gene_id)]

    def truncate(lines):
        return ["".join(lines)[:-7]]

    def non_numeric_tpm(lines):
        out = []
        for ln in lines:
            if ln.startswith(MKI67.gene_id):
                fields = ln.split("\t")
                fields[6] = "abc"
                ln = "\t".join(fields)
            out.append(ln)
        return out

    edits = {
        "TCGA-A2-A25D-01": drop_mki67,
        "TCGA-BH-A0EA-01": truncate,
        "TCGA-AO-A0J6-01": non_numeric_tpm,
    }
    for key, edit in edits.items():
        paths[ids[key]] = _rewrite(paths[ids[key]], tmp_path / f"{key}.tsv", edit)
    del paths[ids["TCGA-D8-A1XK-01"]]

    table = build_expression_table(selection, paths, [MKI67])
    assert list(table.frame["sample_key"]) == ["TCGA-A7-A13D-01"]
    reasons = {e.item: e.reason for e in table.exclusions}
    assert reasons == {
        "TCGA-A2-A25D-01": "gene missing from STAR file",
        "TCGA-BH-A0EA-01": "truncated STAR file",
        "TCGA-AO-A0J6-01": "non-numeric or invalid value in STAR file",
        "TCGA-D8-A1XK-01": "STAR file not available",
    }
    details = {e.item: e.detail for e in table.exclusions}
    assert "ENSG00000148773" in details["TCGA-A2-A25D-01"]
    assert "'abc'" in details["TCGA-AO-A0J6-01"]
    assert not table.frame["tpm_MKI67"].isna().any()
    assert table.summary()["excluded"]["truncated STAR file"] == 1


def test_no_readable_file_is_a_global_error(rna, star_paths, tmp_path):
    selection = select_tumour_expression(rna)
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(CohortError, match="none of the 5 tumour samples"):
        build_expression_table(selection, dict.fromkeys(star_paths, empty), [MKI67])


class _FakeResult:
    def __init__(self, path: Path) -> None:
        self.path = path


class _FakeClient:
    """Downloads by copying from the catalogue; fails for the ids in ``broken``."""

    def __init__(self, sources: dict[str, Path], broken: set[str], log: list) -> None:
        self.sources, self.broken, self.log = sources, broken, log
        self.closed = False

    def download(self, file_id, dest_dir, *, md5=None, size=None):
        self.log.append((threading.get_ident(), file_id))
        if file_id in self.broken:
            raise DownloadError(f"{file_id}: md5 mismatch", file_id=file_id)
        dest = Path(dest_dir) / file_id / "x.tsv"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(self.sources[file_id].read_bytes())
        return _FakeResult(dest)

    def close(self) -> None:
        self.closed = True


def test_fetch_uses_one_client_per_worker_and_lists_every_failure(rna, star_paths, tmp_path):
    clients: list[_FakeClient] = []
    log: list = []

    def factory(broken=frozenset()):
        clients.append(_FakeClient(star_paths, set(broken), log))
        return clients[-1]

    paths = fetch_expression_files(rna, tmp_path, factory, workers=3)
    assert set(paths) == {r.file_id for r in rna}
    assert all(p.read_bytes() == star_paths[f].read_bytes() for f, p in paths.items())
    assert 1 <= len(clients) <= 3 and all(c.closed for c in clients)

    broken = {rna[1].file_id, rna[4].file_id}
    clients.clear()
    with pytest.raises(DownloadError) as info:
        fetch_expression_files(rna, tmp_path, lambda: factory(broken), workers=2)
    assert "2 of 7" in str(info.value)
    assert all(fid in str(info.value) for fid in broken)
    assert all(c.closed for c in clients)
    with pytest.raises(CohortError, match="workers"):
        fetch_expression_files(rna, tmp_path, factory, workers=0)
