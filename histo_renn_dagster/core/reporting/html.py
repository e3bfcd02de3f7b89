"""``report.html``: one static page linking every figure with the run's configuration and provenance.

The page is self-contained apart from the PNGs beside it (relative links), carries no timestamp
(the same inputs give the same bytes), and escapes every value it shows.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from histo_renn_dagster.core.atomic import atomic_write_bytes
from histo_renn_dagster.core.reporting.provenance import Provenance
from histo_renn_dagster.core.reporting.reference import MlReference
from histo_renn_dagster.core.reporting.results import PartitionIssue

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1200px;
padding:0 1rem;color:#222;line-height:1.45}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .6rem;
text-align:left;font-size:.92rem;vertical-align:top}th{background:#f3f3f3}
.banner{background:#fff3cd;border:1px solid #e0b84c;padding:.8rem 1rem;border-radius:4px;
font-weight:600}.warn{color:#8a5300}figure{margin:1rem 0 2rem}img{max-width:100%;
border:1px solid #eee}figcaption{color:#555;font-size:.92rem}code{font-size:.88rem}
nav a{margin-right:.8rem}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _banner(provenance: Provenance) -> str:
    if provenance.random_weights:
        return (
            '<p class="banner">Warning: the slide embeddings were computed with RANDOM backbone '
            "weights. The image features carry no learned morphology, so the models' fixed "
            "parts say nothing about tissue; treat every feature-based result as a pipeline "
            "check, not a finding.</p>"
        )
    if not provenance.weights:
        return (
            '<p class="banner">Warning: no embedding file of the cohort could be read, so the '
            "backbone and its weights are unknown.</p>"
        )
    return ""


def _provenance(provenance: Provenance) -> str:
    rows: list[list[object]] = [
        ["GDC data release", provenance.data_release or "unknown"],
        ["cohort units", "unknown" if provenance.cohort_units is None else provenance.cohort_units],
        ["embedding files read", provenance.embeddings_read],
        ["embedding files unreadable", provenance.embeddings_missing],
    ]
    weights = _table(
        ["backbone", "weights", "source", "sha256", "slides"],
        [[w.backbone, w.weights, w.source, w.sha256 or "–", w.slides] for w in provenance.weights],
    )
    notes = "".join(f'<li class="warn">{_e(p)}</li>' for p in provenance.problems)
    return _table(["item", "value"], rows) + weights + (f"<ul>{notes}</ul>" if notes else "")


def _reference(ref: MlReference | None) -> str:
    if ref is None:
        return "<p>Too few units or sites to fit the intercept-only mixed model.</p>"
    rows = [
        ["σ²_b (site)", ref.sigma2_b, f"[{ref.sigma2_b_ci[0]:.4g}, {ref.sigma2_b_ci[1]:.4g}]"],
        ["σ²_e (residual)", ref.sigma2_e, f"[{ref.sigma2_e_ci[0]:.4g}, {ref.sigma2_e_ci[1]:.4g}]"],
        ["ICC", ref.icc, ""],
        ["μ", ref.mu, ""],
    ]
    return (
        f"<p>Intercept-only linear mixed model fitted by exact maximum likelihood on "
        f"{ref.units} {_e(ref.rows)} at {ref.sites} sites; 95% profile-likelihood intervals. "
        "Drawn as dashed lines and grey bands on the variance figures.</p>"
        + _table(["parameter", "estimate", "95% interval"], rows)
    )


def _configs(configs: Mapping[str, Mapping[str, Any]]) -> str:
    if not configs:
        return "<p>No model configuration found.</p>"
    keys = sorted({k for c in configs.values() for k in c})
    ms = sorted(configs, key=int)
    rows = [[k, *[configs[m].get(k, "–") for m in ms]] for k in keys]
    return _table(["setting", *[f"m = {m}" for m in ms]], rows)


def write_report_html(
    path: Path,
    *,
    figures: Sequence[tuple[str, str, str]],
    provenance: Provenance,
    reference: MlReference | None,
    configs: Mapping[str, Mapping[str, Any]],
    partitions: Sequence[str],
    missing: Sequence[PartitionIssue],
    row_counts: Mapping[str, int],
    summary: pd.DataFrame,
    focus_m: int | None,
    problems: Sequence[str] = (),
) -> Path:
    """Write the page; ``figures`` are (file name beside the page, title, caption)."""
    nav = "".join(f'<a href="#{_e(Path(f).stem)}">{_e(t)}</a>' for f, t, _ in figures)
    figs = "".join(
        f'<figure id="{_e(Path(f).stem)}"><h3>{_e(t)}</h3><a href="{_e(f)}">'
        f'<img src="{_e(f)}" alt="{_e(t)}"></a><figcaption>{_e(c)}</figcaption></figure>'
        for f, t, c in figures
    )
    missing_rows = [[p.m, p.detail] for p in missing]
    summary_rows = summary.astype(object).values.tolist()
    notes = "".join(f'<li class="warn">{_e(p)}</li>' for p in problems)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>RENN study report</title>
<style>{_CSS}</style></head><body>
<h1>RENN study report</h1>
<p>MKI67 expression (y = log TPM) from H&amp;E slide embeddings with tissue-source-site random
effects; every figure is regenerated from the <code>renn_results</code> tables.</p>
{_banner(provenance)}
<nav>{nav}</nav>
<h2>Provenance</h2>{_provenance(provenance)}
<h2>Model runs</h2>
<p>Minibatch sizes with results: {_e(", ".join(partitions) or "none")}.
Focus m for the per-model figures: {_e("none" if focus_m is None else focus_m)}.</p>
{_table(["m", "missing"], missing_rows) if missing_rows else ""}
{_table(["table", "rows"], sorted(row_counts.items()))}
{f"<ul>{notes}</ul>" if notes else ""}
<h2>Summary at m = {_e(focus_m)}</h2>{_table(list(summary.columns), summary_rows)}
<h2>Exact ML reference</h2>{_reference(reference)}
<h2>Configuration</h2>{_configs(configs)}
<h2>Figures</h2>{figs}
</body></html>
"""
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
