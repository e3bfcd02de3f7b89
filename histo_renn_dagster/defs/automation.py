"""Declarative automation of the cohort -> model -> report chain, without thrashing.

Why not ``AutomationCondition.eager()``: eager fires whenever any dependency updated since the last
tick. During a backfill of a thousand slides ``cohort_table`` depends on every ``slide_embedding``
partition, and between two slide runs no dependency is in progress, so eager would rebuild the
table, retrain six models and redraw the report once per slide.

``settled_refresh(cron)`` is eager with three changes:

* cron-gated: it fires at most once per cron window (``cron_tick_passed(...).since_last_handled()``),
  so a stream of upstream updates collapses into one refresh per window;
* settled: it waits while any dependency is in progress, including partitions targeted by a
  running backfill (``in_progress`` covers both runs and backfills), and while the asset itself is;
* changed, not just rematerialized: a dependency counts as changed when its *data version*
  changed (``data_version_changed``), so a nightly manifest refresh that lists the same files does
  not retrain anything, provided the upstream asset reports a content-derived ``DataVersion``.
  Assets that report none get a new data version per materialization, which is plain "updated".

A change is remembered from the moment it happens until the asset is next *requested* (Dagster
sees a request on the tick after it is made), not until it is merely updated as with eager's
``since_last_handled``: a slide embedded while the table's refresh run is running lands in the
same tick as the table's own update, and eager would forget it. So nothing is lost when a window
opens in the middle of a backfill: the refresh happens on the first settled tick after it. The
one blind spot is a dependency that finishes a whole run between the request and the next tick
(30 s, while the requested run is usually still queued and so reads the new input anyway). Updates made by the same run that materializes the asset do not count
(``executed_with_root_target``), so one run that refreshes a chain does not re-trigger it.

Attach with ``@dg.asset(automation_condition=settled_refresh())``. Per-slide assets do not get a
condition: ``new_slides_sensor`` owns them, so a manifest refresh never reruns a thousand slides.
"""

from __future__ import annotations

import dagster as dg

REFRESH_CRON = "*/15 * * * *"
"""At most one refresh of the chain per quarter hour."""

AC = dg.AutomationCondition


def inputs_changed() -> dg.AutomationCondition:
    """True when a dependency's data version changed since the previous evaluation, or when a
    dependency is requested on this same tick (so a chain can start in one run)."""
    changed_elsewhere = (AC.data_version_changed() & ~AC.executed_with_root_target()).with_label(
        "data_version_changed_by_other_run"
    )
    return AC.any_deps_match(changed_elsewhere | AC.will_be_requested()).with_label(
        "any_deps_changed"
    )


def settled_refresh(
    cron_schedule: str = REFRESH_CRON,
    cron_timezone: str = "UTC",
    *,
    require_all_deps: bool = False,
) -> dg.AutomationCondition:
    """Refresh when inputs changed, at most once per cron window, once upstream has settled.

    ``require_all_deps`` additionally waits until no dependency partition is missing; leave it
    off for assets that are built from whatever upstream exists (``cohort_table`` reads the
    embeddings there are), turn it on for assets that need every input (all model partitions).
    """
    requested = (AC.newly_requested() | AC.initial_evaluation()).with_label("requested")
    # Order matters: an AND evaluates each operand only where the ones before it are true, and a
    # `since` operand must see every tick to remember its trigger, so the input trigger goes first.
    condition = (
        (AC.newly_missing() | inputs_changed()).since(requested)
        & AC.cron_tick_passed(cron_schedule, cron_timezone).since_last_handled()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
    )
    if require_all_deps:
        condition = condition & ~AC.any_deps_missing()
    return condition.with_label(f"settled_refresh({cron_schedule}, {cron_timezone})")


automation_sensor = dg.AutomationConditionSensorDefinition(
    "settled_refresh_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates the automation conditions (settled_refresh) of the cohort, model and "
    "report assets; assets without a condition are never started by it.",
)
