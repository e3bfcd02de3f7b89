"""Orchestration overhead of slide_tiles: one run per slide vs one run over many slides.

Run from the repository root: ``.venv/bin/python benchmarks/orchestration.py [--slides 8]``.
Side by side, on the same small synthetic 40x slides (emulator ``write_svs``, cached in the temp
dir) and the same lake layout:

(a) core only: ``tile_slide`` + ``verify_tile_store`` per slide, no Dagster (the work itself);
(b) one in-process run per slide: ``dg.materialize(partition_key=KEY)`` of slide_tiles and its
    checks, as ``histo-renn demo`` does;
(c) one run over all slides: a variant asset with ``BackfillPolicy.single_run()`` looping over
    ``context.partition_keys`` (a partition-range run);
(d) one CLI process per slide: ``dagster asset materialize --partition KEY`` in a subprocess, which
    is what each queued run of a backfill costs (a process that loads the code, then runs), with
    the default multiprocess executor (one more process per step; the asset's checks run inside
    its step);
(e) the same with the in-process executor (``--config-json`` selecting ``in_process``);
then the failure isolation of (b) and (c) when one slide of the batch is not a slide.

The file also defines ``defs`` so that (d) can load it with ``-f``; nothing runs on import.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from histo_renn_dagster.core.errors import HistoRennError  # noqa: E402
from histo_renn_dagster.core.wsi.store import verify_tile_store  # noqa: E402
from histo_renn_dagster.core.wsi.tiling import tile_slide  # noqa: E402
from histo_renn_dagster.defs.assets.slides import slide_tiles  # noqa: E402
from histo_renn_dagster.defs.partitions import SLIDES_PARTITION, slides_partitions  # noqa: E402
from histo_renn_dagster.defs.resources import LayoutResource  # noqa: E402

SIDE = 3600  # level-0 px at 0.25 um/px: a 3 x 3 grid of 1196-px tiles, a few with tissue
BAD_ID = "ffffffff-ffff-4fff-bfff-ffffffffffff"


@dg.asset(
    partitions_def=slides_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="benchmark",
)
def slide_tiles_batched(context: dg.AssetExecutionContext, layout: LayoutResource) -> None:
    """slide_tiles for every slide of a partition range in one step (same core calls)."""
    lake = layout.lake()
    failed: dict[str, str] = {}
    for key in context.partition_keys:
        slide = next(lake.slide_dir(key).iterdir())
        try:
            result = tile_slide(
                slide,
                lake.tiles_path(key),
                slide_id=key,
                previews_dir=lake.tile_previews_dir(key),
            )
            verify_tile_store(result.out, expected_tiles=result.tiles)
        except HistoRennError as exc:
            failed[key] = str(exc)
    if failed:  # one materialization covers the range: a bad slide fails every slide in it
        raise dg.Failure(f"{len(failed)} slide(s) failed: {failed}")


defs = dg.Definitions(
    assets=[slide_tiles, slide_tiles_batched],
    resources={"layout": LayoutResource()},
)


def _file_id(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"


def make_slides(n: int, cache: Path) -> list[Path]:
    from histo_renn_dagster.emulator.synthetic_slides import SlideSpec, write_svs

    cache.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = cache / f"orch_{SIDE}_{i}.svs"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            write_svs(tmp, SlideSpec(seed=100 + i, width=SIDE, height=SIDE, tissue_fraction=0.6))
            os.replace(tmp, path)
        paths.append(path)
    return paths


def place(lake: Path, slides: list[Path], bad: bool = False) -> list[str]:
    shutil.rmtree(lake, ignore_errors=True)
    keys = []
    for i, slide in enumerate(slides):
        key = _file_id(i)
        (lake / "slides" / key).mkdir(parents=True)
        os.link(slide, lake / "slides" / key / slide.name)
        keys.append(key)
    if bad:
        (lake / "slides" / BAD_ID).mkdir(parents=True)
        (lake / "slides" / BAD_ID / "notes.svs").write_text("not a slide\n")
        keys.append(BAD_ID)  # registered last, so the range of (c) ends on it
    return keys


def core_only(lake: Path, keys: list[str]) -> float:
    from histo_renn_dagster.core.layout import LakeLayout

    layout = LakeLayout(lake)
    t0 = time.perf_counter()
    for key in keys:
        slide = next(layout.slide_dir(key).iterdir())
        out = layout.tiles_path(key)
        result = tile_slide(slide, out, slide_id=key, previews_dir=layout.tile_previews_dir(key))
        verify_tile_store(out, expected_tiles=result.tiles)
    return time.perf_counter() - t0


def per_slide_runs(instance: dg.DagsterInstance, lake: Path, keys: list[str]) -> tuple[float, int]:
    resources = {"layout": LayoutResource(root=str(lake))}
    t0 = time.perf_counter()
    failed = 0
    for key in keys:
        result = dg.materialize(
            [slide_tiles],
            partition_key=key,
            instance=instance,
            resources=resources,
            raise_on_error=False,
        )
        failed += not result.success
    return time.perf_counter() - t0, failed


def one_run(instance: dg.DagsterInstance, lake: Path, keys: list[str]) -> tuple[float, bool]:
    t0 = time.perf_counter()
    result = dg.materialize(
        [slide_tiles_batched],
        instance=instance,
        resources={"layout": LayoutResource(root=str(lake))},
        tags={
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1],
        },
        raise_on_error=False,
    )
    return time.perf_counter() - t0, result.success


IN_PROCESS = '{"execution": {"config": {"in_process": {}}}}'


def cli_runs(home: Path, lake: Path, keys: list[str], *, in_process: bool) -> float:
    env = {**os.environ, "DAGSTER_HOME": str(home), "HISTO_RENN_LAKE": str(lake)}
    dagster = str(Path(sys.executable).with_name("dagster"))
    extra = ["--config-json", IN_PROCESS] if in_process else []
    t0 = time.perf_counter()
    for key in keys:
        subprocess.run(
            [
                dagster,
                "asset",
                "materialize",
                "-f",
                __file__,
                "--select",
                "slide_tiles",
                "--partition",
                key,
                *extra,
            ],
            env=env,
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slides", type=int, default=8)
    parser.add_argument("--cli-slides", type=int, default=3, help="slides for (d); 0 skips it")
    ns = parser.parse_args()
    slides = make_slides(ns.slides, Path(tempfile.gettempdir()) / "histo_renn_bench")
    with tempfile.TemporaryDirectory() as work:
        home, lake = Path(work) / "home", Path(work) / "lake"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        os.environ["DAGSTER_HOME"] = str(home)
        instance = dg.DagsterInstance.get()
        keys = place(lake, slides)
        instance.add_dynamic_partitions(SLIDES_PARTITION, [*keys, BAD_ID])
        core_only(lake, keys[:1])  # warm imports and caches for every variant alike
        rows = {}
        rows["a"] = core_only(lake, place(lake, slides))
        rows["b"], _ = per_slide_runs(instance, lake, place(lake, slides))
        rows["c"], batch_ok = one_run(instance, lake, place(lake, slides))
        assert batch_ok, "the one-run variant failed on good slides"
        tiles = sum(verify_tile_store(lake / "tiles" / f"{k}.h5").tiles for k in keys)
        if ns.cli_slides:
            cli_keys = place(lake, slides)[: ns.cli_slides]
            rows["d"] = cli_runs(home, lake, cli_keys, in_process=False)
            rows["e"] = cli_runs(home, lake, place(lake, slides)[: ns.cli_slides], in_process=True)
        bad_keys = place(lake, slides, bad=True)
        _, per_run_failed = per_slide_runs(instance, lake, bad_keys)
        _, batch_ok = one_run(instance, lake, bad_keys)
    n = ns.slides
    per = {k: v / (ns.cli_slides if k in "de" else n) for k, v in rows.items()}
    names = {
        "a": "core only (no Dagster)",
        "b": "one in-process run per slide",
        "c": "one run, all slides",
        "d": "CLI run per slide, multiprocess",
        "e": "CLI run per slide, in_process",
    }
    print(f"{n} synthetic 40x slides of {SIDE}x{SIDE} px, {tiles} tiles in all")
    print(f"{'variant':<34}{'s/slide':>9}{'overhead s/slide':>18}{'x core':>8}")
    for key, seconds in per.items():
        print(
            f"{names[key]:<34}{seconds:>9.2f}{seconds - per['a']:>18.2f}{seconds / per['a']:>8.1f}"
        )
    print(
        f"one run per slide / one run: {per['b'] / per['c']:.2f}x the time; overhead per slide "
        f"{per['b'] - per['a']:.2f} s vs {per['c'] - per['a']:.2f} s"
    )
    print(
        json.dumps(
            {
                "failure_isolation_one_bad_slide": {
                    "per_slide_runs_failed": per_run_failed,
                    "per_slide_good_slides_materialized": len(bad_keys) - per_run_failed,
                    "one_run_succeeded": batch_ok,
                    "one_run_good_slides_materialized": n if batch_ok else 0,
                }
            }
        )
    )


if __name__ == "__main__":
    main()
