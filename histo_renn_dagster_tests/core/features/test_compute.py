from __future__ import annotations

import pytest
import torch

from histo_renn_dagster.core.errors import ComputeError
from histo_renn_dagster.core.features.compute import (
    ComputeSpec,
    autocast,
    determinism,
    resolve_compute,
)


def test_auto_reports_the_device_actually_used() -> None:
    resolved = resolve_compute(ComputeSpec())
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolved.device.type == expected
    assert resolved.as_record()["device"].startswith(expected)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_requested_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(ComputeError, match="CUDA is not available"):
        resolve_compute(ComputeSpec(device="cuda:0"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"device": "tpu"}, "device 'tpu'"),
        ({"device": "cuda:x"}, "device 'cuda:x'"),
        ({"precision": "fp8"}, "precision 'fp8'"),
        ({"batch_size": 0}, "batch_size"),
        ({"workers": -1}, "workers"),
    ],
)
def test_invalid_settings_name_the_problem(kwargs: dict, message: str) -> None:
    with pytest.raises(ComputeError, match=message):
        ComputeSpec(**kwargs)


def test_autocast_only_for_reduced_precision() -> None:
    x = torch.ones(2, 2)
    with autocast(resolve_compute(ComputeSpec(device="cpu"))):
        assert (x @ x).dtype == torch.float32
    with autocast(resolve_compute(ComputeSpec(device="cpu", precision="bf16"))):
        assert (x @ x).dtype == torch.bfloat16


def test_determinism_flags_are_restored() -> None:
    before = torch.are_deterministic_algorithms_enabled()
    with determinism(resolve_compute(ComputeSpec(device="cpu", deterministic=not before))):
        assert torch.are_deterministic_algorithms_enabled() is (not before)
    assert torch.are_deterministic_algorithms_enabled() is before
