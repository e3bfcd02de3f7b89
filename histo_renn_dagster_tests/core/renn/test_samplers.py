"""Epoch plans: group-exclusive chunks, singleton merging, site mixing, padding across seeds."""

from __future__ import annotations

import numpy as np
import pytest

from histo_renn_dagster.core.errors import RennSpecError
from histo_renn_dagster.core.renn.samplers import plan_epoch, site_chunks, stack_plans

SITE = np.repeat(np.arange(5), [7, 1, 9, 4, 12])


def _blocks(plan):
    keys = list(zip(plan.step.tolist(), plan.block.tolist(), strict=True))
    out: dict[tuple[int, int], list[int]] = {}
    for key, row in zip(keys, plan.rows.tolist(), strict=True):
        out.setdefault(key, []).append(row)
    return out


@pytest.mark.parametrize("merge", [False, True])
def test_group_sampler_cuts_each_shuffled_site_into_chunks_of_m(merge: bool) -> None:
    rows = np.arange(SITE.size)
    plan = plan_epoch(SITE, rows, 3, np.random.default_rng(1), merge_singletons=merge)
    assert sorted(plan.rows.tolist()) == rows.tolist()  # every row exactly once
    blocks = _blocks(plan)
    assert all(block == 0 for _, block in blocks)  # one block per step
    sizes: dict[int, list[int]] = {}
    for chunk in blocks.values():
        assert len(set(SITE[chunk])) == 1  # group-exclusive
        sizes.setdefault(int(SITE[chunk[0]]), []).append(len(chunk))
    want = {0: [3, 3, 1], 1: [1], 2: [3, 3, 3], 3: [3, 1], 4: [3, 3, 3, 3]}
    if merge:
        want = {0: [3, 4], 1: [1], 2: [3, 3, 3], 3: [4], 4: [3, 3, 3, 3]}
    assert {k: sorted(v) for k, v in sizes.items()} == {k: sorted(v) for k, v in want.items()}
    # chunks of one site are consecutive steps (sites are visited one after the other)
    order = [int(SITE[c[0]]) for _, c in sorted(blocks.items())]
    assert sum(1 for i in range(1, len(order)) if order[i] != order[i - 1]) == 4


def test_site_sizes_count_only_the_sampled_rows() -> None:
    rows = np.flatnonzero(SITE != 2)[:-3]  # drop site 2 and three rows of site 4
    plan = plan_epoch(SITE, rows, None, np.random.default_rng(0))
    assert plan.num_steps == 4
    for chunk in _blocks(plan).values():
        j = SITE[chunk[0]]
        assert len(chunk) == int((SITE[rows] == j).sum())
    assert set(plan.site_size.tolist()) == {7.0, 1.0, 4.0, 9.0}


def test_shuffles_differ_between_epochs_and_are_uniform_within_sites() -> None:
    rng = np.random.default_rng(4)
    rows = np.flatnonzero(SITE == 4)
    firsts = [site_chunks(SITE, rows, 3, rng, merge_singletons=True)[0][0] for _ in range(1200)]
    counts = np.bincount(np.searchsorted(rows, firsts), minlength=rows.size)
    assert counts.min() > 50 and counts.max() < 150  # each of 12 rows ~ 100 times


def test_mixing_sampler_packs_chunks_of_different_sites_into_steps() -> None:
    rows = np.arange(SITE.size)
    plan = plan_epoch(SITE, rows, 2, np.random.default_rng(2), sampler="mixing", rows_per_step=8)
    blocks = _blocks(plan)
    for chunk in blocks.values():
        assert len(set(SITE[chunk])) == 1
    per_step = np.bincount(plan.step)
    assert (per_step[:-1] >= 8).all() and (per_step[:-1] <= 8 + 3).all()
    assert any(
        len({int(SITE[c[0]]) for (s, _), c in blocks.items() if s == t}) > 1
        for t in range(plan.num_steps)
    )


def test_stack_plans_pads_seeds_with_fewer_steps() -> None:
    a = plan_epoch(SITE, np.arange(SITE.size), 4, np.random.default_rng(0))
    b = plan_epoch(SITE, np.flatnonzero(SITE < 3), 4, np.random.default_rng(1))
    stacked = stack_plans([a, b])
    assert stacked.rows.shape[:2] == (a.num_steps, 2)
    assert stacked.active[:, 0].all() and stacked.active[:, 1].sum() == b.num_steps
    assert stacked.weight[b.num_steps :, 1].sum() == 0
    got = stacked.rows[:, 0][stacked.weight[:, 0] > 0]
    assert got.tolist() == a.rows.tolist()


def test_bad_settings_are_named() -> None:
    with pytest.raises(RennSpecError, match="minibatch size"):
        plan_epoch(SITE, np.arange(3), 0, np.random.default_rng(0))
    with pytest.raises(RennSpecError, match="sampler"):
        plan_epoch(SITE, np.arange(3), 2, np.random.default_rng(0), sampler="random")
