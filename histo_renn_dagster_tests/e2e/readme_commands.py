"""The README's command-line examples, in one place: the e2e tests run them exactly as written.

Each entry is ``(what it does, the command)``. They run from the repository root with the venv's
``bin`` on PATH, ``DAGSTER_HOME`` set, and ``HISTO_RENN_GDC_URL`` pointing at a GDC emulator that
serves the demo cohort (``histo-renn gdc-emulator --cohort demo --port 8766``). The file ids are
real TCGA-BRCA slides of the demo cohort, the first three in partition (file id) order.
"""

from __future__ import annotations

SLIDE_A = "08a55811-3ec5-4bdc-af77-7ce3f086250d"
SLIDE_B = "0aed1454-92b8-46c9-808d-d2413784783f"
SLIDE_C = "0b2e87e5-8168-4e31-ace7-ef06fb4a1e68"
DEMO_SLIDES = (
    SLIDE_A,
    SLIDE_B,
    SLIDE_C,
    "1c8203d6-e6b9-4224-b757-e654fe112d28",
    "1c8bf463-54da-4f25-a146-e9ecb3df3af1",
    "f78dc3fd-21c7-4aa5-a16f-87392cc1a4d4",
    "fde7b886-1909-4e13-b1f7-77bdca8c2042",
)
"""The e2e cohort: these seven demo slides, the last four held back for publishing (the README's
publish command takes two, the sensor test one)."""

MODULE = "-m histo_renn_dagster.definitions"

# Run in-process, one after another; each leaves materializations behind.
SYNC_COMMANDS: tuple[tuple[str, str], ...] = (
    (
        "list the cohort at the GDC (registers one `slides` partition per slide)",
        f"dagster asset materialize {MODULE} --select gdc_slide_manifest,gdc_expression_manifest",
    ),
    (
        "download one slide (one `slides` partition)",
        f"dagster asset materialize {MODULE} --select slide_file --partition {SLIDE_A}",
    ),
    (
        "the same with dg (reads [tool.dg] in pyproject.toml)",
        f"dg launch --assets slide_file --partition {SLIDE_B}",
    ),
)

# Submitted to the instance's run queue: `make dev` (its daemon) executes them.
QUEUED_COMMANDS: tuple[tuple[str, str], ...] = (
    (
        "download, tile and embed a list of slides (one run per slide)",
        f"dagster job backfill {MODULE} -j slide_run --partitions {SLIDE_A},{SLIDE_B} --noprompt",
    ),
    (
        "the same for a range of slides (partition order = file id order)",
        f"dagster job backfill {MODULE} -j slide_run --from {SLIDE_A} --to {SLIDE_C} --noprompt",
    ),
)

# Need the renn assets (minibatch-size partitions 2 4 8 16 32 150).
MINIBATCH_COMMANDS: tuple[tuple[str, str], ...] = (
    (
        "train the models of one minibatch size",
        f"dagster asset materialize {MODULE} --select renn_model --partition 8",
    ),
    ("the same with dg", "dg launch --assets renn_model --partition 8"),
)

# New slides: publish in the emulator, let the sensor find them.
PUBLISH_COMMANDS: tuple[tuple[str, str], ...] = (
    (
        "publish two new slides in the running emulator",
        'histo-renn publish-slides --emulator "$HISTO_RENN_GDC_URL" --count 2',
    ),
    ("turn on the new-slides sensor", f"dagster sensor start {MODULE} new_slides_sensor"),
)
