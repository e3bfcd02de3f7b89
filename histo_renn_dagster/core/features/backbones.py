"""Backbone registry: frozen feature extractors with their classifier removed.

Each entry gives the architecture, the eval transforms, the embedding dimension and the input
size. ``inception_v3`` is the reference (torchvision, 299 px, 2048-d); ``resnet50`` is the usual
ImageNet baseline; ``timm:<name>`` builds any timm model (the optional ``timm`` package), which is
how pathology foundation models plug in. :func:`register_backbone` adds more.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn

from histo_renn_dagster.core.errors import BackboneError, WeightsError
from histo_renn_dagster.core.features.transforms import TransformSpec, preprocess_tiles
from histo_renn_dagster.core.features.weights import (
    PRETRAINED,
    RANDOM,
    WeightsInfo,
    apply_state_dict,
    missing_pretrained_message,
    random_weights,
    read_state_dict,
    recorded_sha256,
    seeded_init,
    torch_hub_checkpoint,
    verify_weights_file,
)

TIMM_PREFIX = "timm:"
DEFAULT_BACKBONE = "inception_v3"


@dataclass(frozen=True)
class BackboneEntry:
    """How to build one backbone. ``build`` returns the full architecture (classifier included,
    so published checkpoints load as they are); ``strip`` removes the classifier."""

    name: str
    dim: int
    transform: TransformSpec
    build: Callable[[], nn.Module]
    strip: Callable[[nn.Module], nn.Module]
    pretrained_url: str | None = None  # torchvision checkpoint, looked up in the torch hub cache
    head_prefixes: tuple[str, ...] = ()  # state-dict keys a weights file may lack or add


@dataclass(frozen=True)
class Backbone:
    """A loaded, frozen backbone in eval mode (on the CPU until the embedder moves it)."""

    name: str
    model: nn.Module
    transform: TransformSpec
    dim: int
    weights: WeightsInfo

    @property
    def input_px(self) -> int:
        return self.transform.input_px

    def as_record(self) -> dict[str, object]:
        record: dict[str, object] = {"backbone": self.name, "dim": self.dim}
        return record | self.transform.as_record() | self.weights.as_record()


def _build_inception() -> nn.Module:
    # transform_input=False: the transform below already produces the (x - 0.5) / 0.5 input the
    # Google weights expect, which is exactly ImageNet Normalize followed by torchvision's
    # transform_input=True. Normalising once, in one multiply-add, keeps both steps from
    # stacking. init_weights=False skips a slow truncated-normal init (weights are loaded or
    # seeded-random anyway).
    return torchvision.models.inception_v3(
        weights=None, aux_logits=True, transform_input=False, init_weights=False
    )


def _strip_inception(model: nn.Module) -> nn.Module:
    model.fc = nn.Identity()
    # The auxiliary head only runs in training; dropping it saves memory. setattr: nn.Module's
    # typed __setattr__ does not know these plain attributes of Inception3.
    setattr(model, "AuxLogits", None)  # noqa: B010
    setattr(model, "aux_logits", False)  # noqa: B010
    return model


def _strip_fc(model: nn.Module) -> nn.Module:
    model.fc = nn.Identity()
    return model


_REGISTRY: dict[str, BackboneEntry] = {}


def register_backbone(entry: BackboneEntry) -> None:
    """Add (or replace) a registry entry; names with the ``timm:`` prefix are reserved."""
    if entry.name.startswith(TIMM_PREFIX) or not entry.name:
        raise BackboneError(f"backbone name {entry.name!r} is empty or uses the timm: prefix")
    _REGISTRY[entry.name] = entry


register_backbone(
    BackboneEntry(
        name="inception_v3",
        dim=2048,
        transform=TransformSpec(input_px=299, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
        build=_build_inception,
        strip=_strip_inception,
        pretrained_url=torchvision.models.Inception_V3_Weights.IMAGENET1K_V1.url,
        head_prefixes=("fc", "AuxLogits"),
    )
)
register_backbone(
    BackboneEntry(
        name="resnet50",
        dim=2048,
        transform=TransformSpec(input_px=224),
        build=lambda: torchvision.models.resnet50(weights=None),
        strip=_strip_fc,
        pretrained_url=torchvision.models.ResNet50_Weights.IMAGENET1K_V2.url,
        head_prefixes=("fc",),
    )
)


def backbone_names() -> list[str]:
    return sorted(_REGISTRY)


def backbone_entry(name: str) -> BackboneEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise BackboneError(
            f"unknown backbone {name!r}: expected one of {backbone_names()} or timm:<model name>"
        ) from None


def load_backbone(
    name: str = DEFAULT_BACKBONE,
    weights: str = PRETRAINED,
    *,
    weights_sha256: str | None = None,
    seed: int = 0,
) -> Backbone:
    """A frozen backbone. ``weights`` is ``pretrained`` (framework cache, never downloaded),
    ``random`` (seeded by ``seed``) or the path of a state-dict file checked against its sha256."""
    if not weights:
        raise BackboneError(f"{name}: weights must be 'pretrained', 'random' or a file path")
    if name.startswith(TIMM_PREFIX):
        from histo_renn_dagster.core.features.timm_backbone import load_timm_backbone

        return load_timm_backbone(
            name.removeprefix(TIMM_PREFIX), weights, weights_sha256=weights_sha256, seed=seed
        )
    entry = backbone_entry(name)
    if weights == RANDOM:
        with seeded_init(seed):  # building draws weights: keep the caller's generator as it was
            model = entry.build()
        model.load_state_dict(_random_state(name, seed))
        info = random_weights(seed)
    else:
        if weights == PRETRAINED:
            if entry.pretrained_url is None:
                raise BackboneError(f"{name} has no published weights: pass a file or 'random'")
            path = torch_hub_checkpoint(entry.pretrained_url)
            if not path.is_file():
                raise WeightsError(missing_pretrained_message(name, entry.pretrained_url))
            source = "torchvision cache"
        else:
            path, source = Path(weights).expanduser(), "file"
        sha = verify_weights_file(path, recorded_sha256(path, weights_sha256))
        state = read_state_dict(path)
        with seeded_init(seed):  # heads missing from the file stay seeded; they are dropped
            model = entry.build()
        apply_state_dict(model, state, source=str(path), head_prefixes=entry.head_prefixes)
        info = WeightsInfo(
            kind=PRETRAINED if weights == PRETRAINED else "file",
            source=source,
            path=str(path),
            sha256=sha,
        )
    return freeze(name, entry.strip(model), entry.transform, entry.dim, info)


CALIBRATION_TILES = ("he_calibration_1.jpg", "he_calibration_2.jpg")
"""Real H&E tiles (CC0; see data/SOURCES.md) that random weights calibrate BatchNorm on."""


@functools.lru_cache(maxsize=4)
def _random_state(name: str, seed: int) -> dict[str, torch.Tensor]:
    """Seeded random weights of a registry backbone with calibrated BatchNorm statistics; kept
    per process, since calibrating costs a few seconds and every slide run needs the same."""
    entry = backbone_entry(name)
    with seeded_init(seed):
        model = entry.build()
        calibrate_batchnorm(model, entry.transform)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def calibration_images(transform: TransformSpec) -> torch.Tensor:
    """The packaged real H&E tiles, preprocessed exactly as tiles are for ``transform``."""
    from PIL import Image

    folder = Path(__file__).with_name("data")
    tiles = []
    for name in CALIBRATION_TILES:
        with Image.open(folder / name) as image:
            tiles.append(np.asarray(image.convert("RGB")))
    return preprocess_tiles(torch.from_numpy(np.stack(tiles)), transform).contiguous()


def calibrate_batchnorm(model: nn.Module, transform: TransformSpec) -> None:
    """Random weights only: set every BatchNorm layer's running statistics from one batch of
    :func:`calibration_images`.

    A freshly built network keeps BatchNorm's identity statistics (mean 0, variance 1), so in
    eval mode nothing rescales the activations and they shrink layer by layer: a random
    Inception-v3 returns pooled features of about 1e-8, which no downstream model can use. One
    forward pass in training mode with cumulative averaging (momentum None) stores each layer's
    batch statistics, so each layer's output has about unit scale, as in a trained network.
    The batch is real H&E (:data:`CALIBRATION_TILES`): a random network amplifies any shift in
    input statistics layer by layer, and noise images left tile features at ~50 instead of ~0.5.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    batch = calibration_images(transform)
    model.train()
    with torch.no_grad():
        model(batch)
    model.eval()
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum


def freeze(
    name: str, model: nn.Module, transform: TransformSpec, dim: int, info: WeightsInfo
) -> Backbone:
    model.eval()
    model.requires_grad_(False)
    return Backbone(name=name, model=model, transform=transform, dim=dim, weights=info)
