"""Minibatch plans: which rows form which block, and which blocks form which optimiser step.

A *block* is a set of rows of one site (the unit every loss scores); a *step* is one optimiser
update and holds one block (the reference's group-exclusive sampler) or several blocks of
different sites (the site-mixing sampler; the step's loss is the sum of its blocks' losses).

Both samplers shuffle each site and cut consecutive chunks of size m (m = None: the whole site),
so every chunk is a uniform random subset of its site, which is what NLL_U's unbiasedness needs.
With ``merge_singletons`` a remainder chunk of one row joins the previous chunk of its site.

:func:`stack_plans` pads the plans of several seeds into dense (step, seed, row) arrays, so all
seeds of a configuration can take their t-th step together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from histo_renn_dagster.core.errors import RennSpecError

SAMPLERS: tuple[str, ...] = ("group", "mixing")


@dataclass(frozen=True)
class EpochPlan:
    """One epoch for one seed; all arrays are aligned with ``rows`` (step order)."""

    rows: np.ndarray  # int64 row indices into the data
    step: np.ndarray  # int64 step number of each row, 0..num_steps-1, non-decreasing
    block: np.ndarray  # int64 block number within its step
    site_size: np.ndarray  # float64 n of the row's site (rows of that site being sampled)
    num_steps: int


@dataclass(frozen=True)
class StackedPlan:
    """Plans of S seeds padded to (T steps, S seeds, B rows) and (T, S, K blocks)."""

    rows: np.ndarray  # (T, S, B) int64, padded with 0
    weight: np.ndarray  # (T, S, B) float64, 1 for real rows, 0 for padding
    block: np.ndarray  # (T, S, B) int64
    block_n: np.ndarray  # (T, S, K) float64 site size of each block (0 = padding)
    active: np.ndarray  # (T, S) bool: the seed has a step t this epoch


def check_m(m: int | None) -> int | None:
    """Validate a block size: a positive int, or None for whole sites."""
    if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
        raise RennSpecError(f"minibatch size m must be a positive integer or None, got {m!r}")
    return m


def site_chunks(
    site: np.ndarray,
    rows: np.ndarray,
    m: int | None,
    rng: np.random.Generator,
    *,
    merge_singletons: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Chunks of ``rows`` in reference order: sites shuffled, rows of each site shuffled, cut.

    ``site`` holds the site index of every row of the data; only ``rows`` are sampled. Returns
    the rows in chunk order and the chunk number (0, 1, ...) of each; done with one lexsort, so
    an epoch plan costs no Python loop over sites or chunks.
    """
    check_m(m)
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return rows, np.zeros(0, dtype=np.int64)
    sub = site[rows]
    uniq, local = np.unique(sub, return_inverse=True)
    site_rank = rng.permutation(len(uniq))[local]
    order = np.lexsort((rng.random(rows.size), site_rank))
    ordered, ranks = rows[order], site_rank[order]
    counts = np.bincount(ranks, minlength=len(uniq))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(rows.size) - starts[ranks]
    size = counts if m is None else np.full(len(uniq), m)
    local_chunk = pos // size[ranks]
    per_site = -(-counts // size)  # ceil
    if merge_singletons:
        # a last chunk of one row (in a site with more than one chunk) joins the previous one
        lonely = (counts % size == 1) & (per_site > 1)
        last = pos == counts[ranks] - 1
        local_chunk = np.where(lonely[ranks] & last, local_chunk - 1, local_chunk)
        per_site = per_site - lonely
    offsets = np.concatenate([[0], np.cumsum(per_site)[:-1]])
    return ordered, offsets[ranks] + local_chunk


def _site_sizes(site: np.ndarray, rows: np.ndarray) -> np.ndarray:
    counts = np.bincount(site[rows], minlength=int(site.max()) + 1 if site.size else 0)
    return counts.astype(np.float64)


def _pack(lengths: np.ndarray, rows_per_step: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy packing: a new step starts once the current one holds >= rows_per_step rows."""
    step = np.zeros(lengths.size, dtype=np.int64)
    block = np.zeros(lengths.size, dtype=np.int64)
    current, index, filled = 0, 0, 0
    for i, length in enumerate(lengths.tolist()):
        if filled >= rows_per_step:
            current, index, filled = current + 1, 0, 0
        step[i], block[i] = current, index
        index += 1
        filled += length
    return step, block


def plan_epoch(
    site: np.ndarray,
    rows: np.ndarray,
    m: int | None,
    rng: np.random.Generator,
    *,
    sampler: str = "group",
    rows_per_step: int = 128,
    merge_singletons: bool = True,
) -> EpochPlan:
    """One epoch's plan over ``rows``.

    ``group``: one chunk per step, in reference order. ``mixing``: the chunks are shuffled
    across sites and packed into steps of at least ``rows_per_step`` rows (the last step may
    be smaller), so the number of steps per epoch does not depend on m.
    """
    if sampler not in SAMPLERS:
        raise RennSpecError(f"unknown sampler {sampler!r}; expected one of {', '.join(SAMPLERS)}")
    if rows_per_step < 1:
        raise RennSpecError(f"rows_per_step must be >= 1, got {rows_per_step}")
    rows = np.asarray(rows, dtype=np.int64)
    ordered, chunk = site_chunks(site, rows, m, rng, merge_singletons=merge_singletons)
    if ordered.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return EpochPlan(empty, empty, empty, np.zeros(0), 0)
    lengths = np.bincount(chunk)
    if sampler == "group":
        step_of_chunk = np.arange(lengths.size)
        block_of_chunk = np.zeros(lengths.size, dtype=np.int64)
        new_order = np.arange(ordered.size)
    else:
        perm = rng.permutation(lengths.size)  # chunk perm[k] becomes the k-th chunk
        rank = np.empty_like(perm)
        rank[perm] = np.arange(perm.size)
        new_order = np.argsort(rank[chunk], kind="stable")
        step_sorted, block_sorted = _pack(lengths[perm], rows_per_step)
        step_of_chunk = np.empty_like(step_sorted)
        block_of_chunk = np.empty_like(block_sorted)
        step_of_chunk[perm], block_of_chunk[perm] = step_sorted, block_sorted
    ordered, chunk = ordered[new_order], chunk[new_order]
    return EpochPlan(
        rows=ordered,
        step=step_of_chunk[chunk],
        block=block_of_chunk[chunk],
        site_size=_site_sizes(site, rows)[site[ordered]],
        num_steps=int(step_of_chunk.max()) + 1,
    )


def stack_plans(plans: list[EpochPlan]) -> StackedPlan:
    """Pad per-seed plans into dense arrays; seeds with fewer steps are inactive at the end."""
    num_seeds = len(plans)
    num_steps = max((p.num_steps for p in plans), default=0)
    widths = [np.bincount(p.step, minlength=num_steps) for p in plans if p.rows.size]
    width = int(max((w.max() for w in widths), default=1))
    blocks = int(max((int(p.block.max()) + 1 for p in plans if p.rows.size), default=1))
    rows = np.zeros((num_steps, num_seeds, width), dtype=np.int64)
    weight = np.zeros((num_steps, num_seeds, width))
    block = np.zeros((num_steps, num_seeds, width), dtype=np.int64)
    block_n = np.zeros((num_steps, num_seeds, blocks))
    active = np.zeros((num_steps, num_seeds), dtype=bool)
    for s, plan in enumerate(plans):
        if plan.rows.size == 0:
            continue
        starts = np.searchsorted(plan.step, np.arange(plan.num_steps))
        pos = np.arange(plan.rows.size) - starts[plan.step]
        rows[plan.step, s, pos] = plan.rows
        weight[plan.step, s, pos] = 1.0
        block[plan.step, s, pos] = plan.block
        block_n[plan.step, s, plan.block] = plan.site_size
        active[: plan.num_steps, s] = True
    return StackedPlan(rows=rows, weight=weight, block=block, block_n=block_n, active=active)
