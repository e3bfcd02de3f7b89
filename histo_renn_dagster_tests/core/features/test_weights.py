from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from histo_renn_dagster.core.errors import WeightsError
from histo_renn_dagster.core.features.weights import (
    apply_state_dict,
    read_state_dict,
    recorded_sha256,
    verify_weights_file,
)
from histo_renn_dagster_tests.core.features.helpers import TinyNet


def _save(path: Path, obj: object) -> str:
    torch.save(obj, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_recorded_sha256_sources(tmp_path: Path) -> None:
    plain = tmp_path / "w.pth"
    plain.write_bytes(b"x")
    assert recorded_sha256(plain) is None
    assert recorded_sha256(plain, "ABCDEF12") == "abcdef12"
    (tmp_path / "w.pth.sha256").write_text("0123abcd  w.pth\n")
    assert recorded_sha256(plain) == "0123abcd"
    hub = tmp_path / "inception_v3_google-0cc3c7bd.pth"
    assert recorded_sha256(hub) == "0cc3c7bd"
    with pytest.raises(WeightsError, match="not 8 to 64 lower-case hex"):
        recorded_sha256(plain, "xyz")


def test_verify_checks_hash_and_says_how_to_record_it(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    sha = _save(path, TinyNet().state_dict())
    assert verify_weights_file(path, sha) == sha
    assert verify_weights_file(path, sha[:8]) == sha  # torch-hub style prefix
    with pytest.raises(WeightsError, match=f"sha256 is {sha}, expected 00000000"):
        verify_weights_file(path, "00000000")
    with pytest.raises(WeightsError, match=r"no recorded sha256.*w\.pth\.sha256"):
        verify_weights_file(path, None)
    with pytest.raises(WeightsError, match="does not exist"):
        verify_weights_file(tmp_path / "absent.pth", sha)


def test_read_state_dict_unwraps_common_containers(tmp_path: Path) -> None:
    state = TinyNet().state_dict()
    wrapped = {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}
    _save(tmp_path / "w.pth", wrapped)
    loaded = read_state_dict(tmp_path / "w.pth")
    assert loaded.keys() == state.keys()
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a readable torch state dict"):
        read_state_dict(tmp_path / "bad.pth")
    _save(tmp_path / "list.pth", [1, 2])
    with pytest.raises(WeightsError, match="does not hold a state dict"):
        read_state_dict(tmp_path / "list.pth")


def test_apply_state_dict_allows_only_head_keys_to_differ() -> None:
    source, target = TinyNet(), TinyNet()
    headless = {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}
    apply_state_dict(target, headless, source="headless", head_prefixes=("fc",))
    torch.testing.assert_close(target.conv.weight, source.conv.weight)
    with pytest.raises(WeightsError, match=r"does not fit.*missing \['fc.weight'"):
        apply_state_dict(TinyNet(), headless, source="headless")
    wrong = {**source.state_dict(), "conv.weight": torch.zeros(1)}
    with pytest.raises(WeightsError, match=r"wrong shape \['conv.weight'\]"):
        apply_state_dict(TinyNet(), wrong, source="wrong")
