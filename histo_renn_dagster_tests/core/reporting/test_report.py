"""The whole report on tiny synthetic model files: every figure written, readable, reproducible."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from histo_renn_dagster.core.errors import ReportError
from histo_renn_dagster.core.layout import LakeLayout
from histo_renn_dagster.core.reporting import figures_training, gallery
from histo_renn_dagster.core.reporting.html import write_report_html
from histo_renn_dagster.core.reporting.provenance import gather_provenance, read_cohort
from histo_renn_dagster.core.reporting.report import (
    FIGURES,
    ReportSpec,
    render_report,
    summary_table,
)
from histo_renn_dagster.core.reporting.results import collect_results, empty_table
from histo_renn_dagster.core.reporting.style import png_bytes, theme
from histo_renn_dagster_tests.core.reporting.helpers import (
    make_world,
    write_lake_inputs,
    write_model_partition,
)

SIZES = ("2", "4", "8", "16", "32", "150")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _lake(root: Path, *, weights: str = "random") -> LakeLayout:
    layout = LakeLayout(root)
    world = make_world(n_sites=4, per_site=5)
    for m in (2, 8):
        write_model_partition(layout, m, world, runs=(17, 41), epochs=4)
    write_lake_inputs(layout, world, weights=weights)
    return layout


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    layout = _lake(tmp_path_factory.mktemp("lake"))
    tables = collect_results(layout, SIZES)
    return layout, tables, render_report(tables, layout, ReportSpec(gallery_slides=2))


@pytest.mark.slow  # renders the whole report once (module fixture)
def test_every_figure_is_a_readable_png(rendered) -> None:
    layout, _, result = rendered
    assert [f.key for f in result.figures] == [key for key, *_ in FIGURES]
    for fig in result.figures:
        assert fig.path.parent == layout.reports_dir and fig.path.name == f"{fig.key}.png"
        data = fig.path.read_bytes()
        assert data.startswith(PNG_SIGNATURE), fig.path
        assert b"matplotlib" not in data  # no version stamp: equal data, equal bytes
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[1] >= 900, fig.key
        assert image.std() > 5, f"{fig.key} looks blank"
    assert result.focus_m == 8


@pytest.mark.slow  # renders the whole report once (module fixture)
def test_html_links_figures_config_and_provenance(rendered) -> None:
    _, _, result = rendered
    page = result.html_path.read_text(encoding="utf-8")
    assert result.html_path.name == "report.html"
    for fig in result.figures:
        assert f'src="{fig.path.name}"' in page
    assert "Data Release 43.0" in page
    assert "RANDOM backbone weights" in page and "inception_v3" in page
    assert "split_site" in page and "m = 150" in page  # config table; missing partition listed
    assert "RENN-U" in page and "LMM (PCA features)" in page  # summary table
    assert result.provenance.random_weights and result.reference is not None


@pytest.mark.slow  # renders the whole report once (module fixture)
def test_rerun_gives_identical_bytes(rendered) -> None:
    _layout, tables, result = rendered
    paths = {f.key: f.path for f in result.figures}
    with theme():
        again = png_bytes(figures_training.draw_loss_per_epoch(tables.history))
    assert again == paths["loss_per_epoch"].read_bytes()
    html = result.html_path.read_bytes()
    write_report_html(
        result.html_path,
        figures=[(f.path.name, f.title, f.caption) for f in result.figures],
        provenance=result.provenance,
        reference=result.reference,
        configs=tables.configs,
        partitions=tables.partitions,
        missing=tables.missing,
        row_counts=tables.row_counts(),
        summary=summary_table(tables.models, result.focus_m),
        focus_m=result.focus_m,
        problems=result.problems,
    )
    assert result.html_path.read_bytes() == html


@pytest.mark.slow  # renders the whole report once (module fixture)
def test_gallery_picks_test_units_across_y_with_previews(rendered) -> None:
    layout, tables, _ = rendered
    file_ids = gallery.unit_file_ids(read_cohort(layout))
    picked = gallery.pick_gallery_units(
        tables.predictions, 8, 3, gallery.preview_units(layout, file_ids)
    )
    assert len(picked) == 3 and (picked["split"] == "test").all()
    assert picked["y"].is_monotonic_increasing
    test_y = tables.predictions.query(
        "m == 8 and loss_func == 'NLL_U' and run == 17 and split == 'test'"
    )["y"]
    assert picked["y"].iloc[0] == test_y.min() and picked["y"].iloc[-1] == test_y.max()
    items = gallery.load_gallery(picked, file_ids, layout, 3)
    assert all(i.thumbnail is not None and len(i.tiles) == 3 and not i.problems for i in items)
    layout.tiles_path(items[0].file_id).unlink()
    broken = gallery.load_gallery(picked.iloc[:1], file_ids, layout, 3)
    assert broken[0].tiles == () and "no tile store" in broken[0].problems[0]


def test_pretrained_weights_have_no_banner(tmp_path: Path) -> None:
    layout = LakeLayout(tmp_path)
    write_lake_inputs(layout, make_world(n_sites=2, per_site=2), weights="pretrained", previews=0)
    prov = gather_provenance(layout, read_cohort(layout))
    assert not prov.random_weights and prov.weights[0].sha256 == "b" * 64
    assert prov.embeddings_read == prov.cohort_units and prov.problems == ()
    (layout.manifests_dir / "gdc_slide_manifest.txt.json").unlink()
    assert "no data release" in gather_provenance(layout, None).problems[0]


@pytest.mark.slow  # renders the whole report once (module fixture)
def test_unknown_focus_m_is_an_error(rendered) -> None:
    layout, tables, _ = rendered
    with pytest.raises(ReportError, match=r"focus_m 32 has no results; available: \[2, 8\]"):
        render_report(tables, layout, ReportSpec(focus_m=32))
    with pytest.raises(ReportError, match="must be >= 0"):
        ReportSpec(gallery_slides=-1)


def test_empty_results_still_write_every_figure(tmp_path: Path) -> None:
    layout = LakeLayout(tmp_path)
    empty = collect_results(layout, SIZES)
    assert empty.models.equals(empty_table("models"))
    result = render_report(dataclasses.replace(empty), layout)
    assert result.focus_m is None and result.reference is None
    assert all(f.path.read_bytes().startswith(PNG_SIGNATURE) for f in result.figures)
    assert "RENN study report" in result.html_path.read_text(encoding="utf-8")
