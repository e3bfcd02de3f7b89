from __future__ import annotations

import hashlib
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from histo_renn_dagster.core.errors import BackboneError, WeightsError
from histo_renn_dagster.core.features.backbones import backbone_names, load_backbone
from histo_renn_dagster_tests.core.features.helpers import TINY_DIM, TinyNet, register_tiny


def _save_with_sidecar(path: Path, state: dict) -> str:
    torch.save(state, path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{sha}  {path.name}\n")
    return sha


def test_registry_lists_the_builtin_backbones() -> None:
    assert {"inception_v3", "resnet50"} <= set(backbone_names())
    with pytest.raises(BackboneError, match=r"unknown backbone 'vgg'.*timm:<model name>"):
        load_backbone("vgg", "random")


def test_inception_weights_from_an_explicit_file(tmp_path: Path) -> None:
    """The real loading path: a torchvision Inception-v3 state dict saved by torch.save."""
    source = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    path = tmp_path / "inception.pth"
    sha = _save_with_sidecar(path, source.state_dict())
    backbone = load_backbone("inception_v3", str(path))
    assert backbone.dim == 2048 and backbone.input_px == 299
    assert backbone.weights.kind == "file" and backbone.weights.sha256 == sha
    assert backbone.weights.path == str(path)
    torch.testing.assert_close(
        backbone.model.Mixed_7c.branch_pool.conv.weight, source.Mixed_7c.branch_pool.conv.weight
    )
    torch.testing.assert_close(
        backbone.model.Conv2d_1a_3x3.bn.running_var, source.Conv2d_1a_3x3.bn.running_var
    )
    assert isinstance(backbone.model.fc, nn.Identity) and backbone.model.AuxLogits is None
    assert not backbone.model.training
    assert not any(p.requires_grad for p in backbone.model.parameters())


def test_missing_weights_file_is_a_helpful_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"weights file .*absent\.pth does not exist"):
        load_backbone("inception_v3", str(tmp_path / "absent.pth"))


def test_missing_pretrained_cache_says_which_file_to_put_where(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    where = tmp_path / "hub" / "checkpoints"
    with pytest.raises(WeightsError) as info:
        load_backbone("inception_v3")
    message = str(info.value)
    assert "inception_v3_google-0cc3c7bd.pth" in message and str(where) in message
    assert "weights: random" in message
    with pytest.raises(WeightsError, match=r"resnet50-11ad3fa6\.pth"):
        load_backbone("resnet50", "pretrained")


def test_pretrained_cache_file_is_hash_checked_then_loaded(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    bogus = cache / "inception_v3_google-0cc3c7bd.pth"
    bogus.write_bytes(b"tampered")
    with pytest.raises(WeightsError, match="expected 0cc3c7bd"):
        load_backbone("inception_v3")
    # A hub-style name carries its hash prefix: register a tiny entry whose file name matches.
    staged = tmp_path / "staged.pth"
    torch.save(TinyNet().state_dict(), staged)
    prefix = hashlib.sha256(staged.read_bytes()).hexdigest()[:8]
    staged.rename(cache / f"tiny-{prefix}.pth")
    register_tiny(f"https://example.invalid/models/tiny-{prefix}.pth", name="tiny_cached")
    backbone = load_backbone("tiny_cached")
    assert backbone.weights.kind == "pretrained" and backbone.weights.source == "torchvision cache"
    assert backbone.weights.sha256.startswith(prefix) and backbone.dim == TINY_DIM


def test_random_weights_are_seeded_and_recorded() -> None:
    a = load_backbone("resnet50", "random", seed=3)
    b = load_backbone("resnet50", "random", seed=3)
    c = load_backbone("resnet50", "random", seed=4)
    assert a.weights.as_record()["weights"] == "random" and a.weights.sha256 is None
    torch.testing.assert_close(a.model.conv1.weight, b.model.conv1.weight)
    assert not torch.equal(a.model.conv1.weight, c.model.conv1.weight)
    assert a.dim == 2048 and a.input_px == 224
    with torch.inference_mode():
        assert a.model(torch.zeros(1, 3, 64, 64)).shape == (1, 2048)


def test_timm_absent_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` raise ImportError
    with pytest.raises(BackboneError, match=r"timm:vit_small.*optional package timm.*pip install"):
        load_backbone("timm:vit_small", "random")


class _FakeTimm(types.ModuleType):
    """The part of timm's API the loader uses: create_model and data.resolve_model_data_config."""

    def __init__(self) -> None:
        super().__init__("timm")
        self.calls: list[tuple[str, bool, int]] = []
        self.data = types.SimpleNamespace(resolve_model_data_config=self._config)

    def create_model(self, name: str, *, pretrained: bool, num_classes: int) -> nn.Module:
        self.calls.append((name, pretrained, num_classes))
        if pretrained:
            raise RuntimeError("offline: no cached weights")
        model = TinyNet()
        model.fc = nn.Identity()
        model.num_features = TINY_DIM
        model.default_cfg = {"classifier": "fc"}
        return model

    @staticmethod
    def _config(model: nn.Module) -> dict:
        return {"input_size": (3, 48, 48), "mean": (0.5, 0.4, 0.3), "std": (0.2, 0.2, 0.2)}


def test_timm_models_plug_in(monkeypatch, tmp_path: Path) -> None:
    fake = _FakeTimm()
    monkeypatch.setitem(sys.modules, "timm", fake)
    backbone = load_backbone("timm:fake_vit", "random", seed=1)
    assert backbone.name == "timm:fake_vit" and backbone.dim == TINY_DIM
    assert backbone.transform.input_px == 48 and backbone.transform.mean == (0.5, 0.4, 0.3)
    assert fake.calls == [("fake_vit", False, 0)]
    # A weights file with the classifier head still in it loads (the head keys are ignored).
    path = tmp_path / "fm.pth"
    sha = _save_with_sidecar(path, TinyNet().state_dict())
    from_file = load_backbone("timm:fake_vit", str(path))
    assert from_file.weights.kind == "file" and from_file.weights.sha256 == sha
    with pytest.raises(WeightsError, match=r"timm:fake_vit: timm could not load.*weights: random"):
        load_backbone("timm:fake_vit", "pretrained")


def test_random_inception_features_have_the_scale_of_a_trained_network() -> None:
    # Without calibrated BatchNorm statistics a random Inception-v3 returns ~1e-8 everywhere.
    import openslide

    from histo_renn_dagster.core.features.transforms import preprocess_tiles

    backbone = load_backbone("inception_v3", "random", seed=0)
    again = load_backbone("inception_v3", "random", seed=0)
    slide = openslide.OpenSlide(
        str(Path(__file__).parents[2] / "data/slides/CMU-1-Small-Region.svs")
    )
    tiles = [
        slide.read_region(xy, 0, (598, 598)).convert("RGB") for xy in ((1500, 300), (300, 2000))
    ]
    images = preprocess_tiles(
        torch.as_tensor(np.stack([np.asarray(t) for t in tiles])), backbone.transform
    )
    with torch.no_grad():
        features = backbone.model(images)
        same = again.model(images)
    assert features.shape == (2, 2048)
    assert 0.05 < float(features.mean()) < 5.0, float(features.mean())
    assert float((features[0] - features[1]).abs().mean()) > 1e-3  # tiles stay distinguishable
    torch.testing.assert_close(features, same, rtol=0, atol=0)  # seeded, calibration included
