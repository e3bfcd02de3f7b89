"""`histo-renn cohort`: build the cohort table from local files (no Dagster, same core code).

Two inputs (see ``core/cohort/from_local.py``):

* gdc-client downloads: ``--sample-sheet gdc_sample_sheet.tsv --data-dir DIR`` (SVS and STAR-Counts
  files as ``DIR/<file_id>/<file_name>`` or flat), optional ``--sites sites.csv``;
* the reference's CSV tables: ``--slides-csv diagnostic_slides.csv --values-csv mki67.csv``.

``--embeddings DIR`` holds ``<file_id>.h5`` slide embeddings; without it the table has no embedding
columns (targets only, e.g. for ``fit --features none``). Prints one JSON line per excluded item,
one per check, then a summary; the table is written (atomically) only when every check passes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from histo_renn_dagster.commands.output import emit


def _spec(args: argparse.Namespace):
    from histo_renn_dagster.core.cohort.splits import SplitSpec
    from histo_renn_dagster.core.cohort.table import CohortSpec, TargetSpec

    return CohortSpec(
        unit=args.unit,
        target=TargetSpec(transform=args.transform, pseudocount=args.pseudocount),
        splits=SplitSpec(seed=args.seed),
    )


def run(args: argparse.Namespace) -> int:
    from histo_renn_dagster.core.cohort.embeddings import directory_embeddings
    from histo_renn_dagster.core.cohort.expression import resolve_genes
    from histo_renn_dagster.core.cohort.from_local import (
        expression_from_case_values,
        expression_from_sample_sheet,
        read_sample_sheet,
        read_site_table,
        slides_from_catalogue,
    )
    from histo_renn_dagster.core.cohort.table import build_cohort_table, write_table
    from histo_renn_dagster.core.cohort.validate import validate_cohort_table
    from histo_renn_dagster.core.errors import CohortError

    spec = _spec(args)
    sites = read_site_table(args.sites) if args.sites else None
    extra: dict[str, object] = {}
    if args.sample_sheet:
        if not args.data_dir:
            raise CohortError("--sample-sheet needs --data-dir (where gdc-client downloaded)")
        sheet = read_sample_sheet(args.sample_sheet, sites)
        genes = resolve_genes(g for g in args.genes.split(",") if g.strip())
        expression = expression_from_sample_sheet(sheet, args.data_dir, genes)
        slides, rejected = list(sheet.slides), [*sheet.rejected, *expression.exclusions]
        frame = expression.frame
        extra = {"expression": expression.summary(), "other_files": sheet.other_files}
        if sites is None:  # names unknown: the code doubles as the name (documented)
            sites = {s.site_code: s.site_code for s in slides if s.site_code}
            extra["site_names"] = "codes (no --sites table)"
        if args.expression_out:
            write_table(frame, args.expression_out)
    elif args.slides_csv and args.values_csv:
        slides, rejected = slides_from_catalogue(args.slides_csv)
        frame = expression_from_case_values(args.values_csv, args.value_column)
    else:
        raise CohortError("give --sample-sheet and --data-dir, or --slides-csv and --values-csv")

    embeddings = directory_embeddings(args.embeddings) if args.embeddings else None
    result = build_cohort_table(slides, frame, spec, embeddings=embeddings, site_names=sites)
    for e in [*rejected, *result.exclusions]:
        emit({"event": "excluded", "item": e.item, "reason": e.reason, "detail": e.detail})
    checks = validate_cohort_table(result.frame, embeddings=embeddings is not None)
    for name, problems in checks.items():
        emit({"event": "check", "check": name, "passed": not problems, "problems": problems})
    failed = [name for name, problems in checks.items() if problems]
    if not failed:
        write_table(result.frame, args.out)
    emit(
        {
            "event": "summary",
            "out": None if failed else str(Path(args.out)),
            **result.summary,
            **extra,
        }
    )
    return 1 if failed else 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cohort",
        help="build the cohort table (Parquet) from local files",
        description="Build the cohort table from gdc-client downloads (--sample-sheet, "
        "--data-dir) or from the reference's CSV tables (--slides-csv, --values-csv), with the "
        "same matching, y transform, splits and checks as the cohort_table asset.",
    )
    p.add_argument("--out", required=True, help="cohort table to write (.parquet)")
    src = p.add_argument_group("gdc-client downloads")
    src.add_argument("--sample-sheet", help="GDC portal sample sheet (TSV)")
    src.add_argument("--data-dir", help="directory gdc-client downloaded the files into")
    src.add_argument("--genes", default="ERBB2,ESR1,PGR", help="genes besides MKI67 (comma list)")
    src.add_argument("--expression-out", help="also write the expression table here (.parquet)")
    csv = p.add_argument_group("CSV tables")
    csv.add_argument("--slides-csv", help="slide catalogue CSV (file_id, file_name, tss_code...)")
    csv.add_argument("--values-csv", help="case-level MKI67 TPM CSV (case_id, submitter_id, value)")
    csv.add_argument("--value-column", help="TPM column of --values-csv (default: the only one)")
    p.add_argument("--sites", help="site table CSV (code,name or tss_code,tss_name)")
    p.add_argument("--embeddings", help="directory of <file_id>.h5 slide embeddings")
    p.add_argument("--unit", default="sample", choices=("sample", "slide"))
    p.add_argument(
        "--transform",
        default="log",
        choices=("log", "log_pseudocount", "identity"),
        help="y from TPM; log excludes zero TPM (default log)",
    )
    p.add_argument("--pseudocount", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0, help="seed of the stored splits")
    p.set_defaults(handler=run)
