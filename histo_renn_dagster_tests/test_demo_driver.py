"""The demo driver's bookkeeping: what it re-runs, and the sigma2_b summary it prints."""

# No `from __future__ import annotations`: Dagster reads the asset's config annotation.

import dagster as dg
import pandas as pd

from histo_renn_dagster.commands.demo import sigma2_b_table
from histo_renn_dagster.core.renn.study_io import sigma2_b_by_m
from histo_renn_dagster.demo import _up_to_date


class _Config(dg.Config):
    profile: str = "default"


@dg.asset(partitions_def=dg.StaticPartitionsDefinition(["2", "4"]))
def study(config: _Config) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"profile": config.profile})


def test_a_partition_trained_with_another_profile_is_not_up_to_date() -> None:
    instance = dg.DagsterInstance.ephemeral()
    assert not _up_to_date(instance, "study", "2", [], {"profile": "default"})  # never ran
    dg.materialize([study], partition_key="2", instance=instance)
    assert _up_to_date(instance, "study", "2", [], {"profile": "default"})
    assert _up_to_date(instance, "study", "2", [])  # no config to compare
    assert not _up_to_date(instance, "study", "2", [], {"profile": "reference"})
    assert not _up_to_date(instance, "study", "4", [], {"profile": "default"})
    run_config = {"ops": {"study": {"config": {"profile": "reference"}}}}
    dg.materialize([study], partition_key="2", instance=instance, run_config=run_config)
    assert _up_to_date(instance, "study", "2", [], {"profile": "reference"})
    assert not _up_to_date(instance, "study", "2", [], {"profile": "default"})


def test_sigma2_b_by_m_averages_seeds_in_increasing_m() -> None:
    models = pd.DataFrame(
        {
            "loss_func": ["NLL"] * 5 + ["LMM_intercept"],
            "m": ["150", "150", "2", "16", "full", "2"],
            "sigma2_b": [2.0, 3.0, 0.5, 1.0, 9.0, 0.25],
        }
    )
    got = sigma2_b_by_m(models)
    assert got == {
        "NLL": {"2": 0.5, "16": 1.0, "150": 2.5, "full": 9.0},
        "LMM_intercept": {"2": 0.25},
    }
    table = sigma2_b_table(got, "reference").splitlines()
    assert "profile reference" in table[1]
    assert table[2].split() == ["m=2", "m=16", "m=150", "m=full"]
    assert table[3].split() == ["NLL", "0.500", "1.000", "2.500", "9.000"]
    assert table[4].split() == ["LMM_intercept", "0.250", "-", "-", "-"]
