"""``timm:<model name>`` backbones (pathology foundation models, ViTs, ...), timm imported lazily.

timm is an optional extra: without it these names fail with a message saying how to install it.
Pretrained weights come from timm's own cache (Hugging Face hub cache; set ``HF_HUB_OFFLINE=1``
on machines without network) or from an explicit state-dict file checked against its sha256.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from histo_renn_dagster.core.errors import BackboneError, WeightsError
from histo_renn_dagster.core.features.backbones import TIMM_PREFIX, Backbone, freeze
from histo_renn_dagster.core.features.transforms import TransformSpec
from histo_renn_dagster.core.features.weights import (
    PRETRAINED,
    RANDOM,
    WeightsInfo,
    apply_state_dict,
    random_weights,
    read_state_dict,
    recorded_sha256,
    seeded_init,
    verify_weights_file,
)


def import_timm(name: str) -> ModuleType:
    try:
        return importlib.import_module("timm")
    except ImportError as exc:
        raise BackboneError(
            f"backbone timm:{name} needs the optional package timm, which is not installed "
            f"here ({exc}): `pip install timm`"
        ) from exc


def load_timm_backbone(
    model_name: str, weights: str, *, weights_sha256: str | None = None, seed: int = 0
) -> Backbone:
    """A frozen timm model with its classifier removed (``num_classes=0``: pooled features)."""
    if not model_name:
        raise BackboneError("backbone 'timm:' needs a model name, e.g. timm:resnet50")
    timm = import_timm(model_name)
    name = TIMM_PREFIX + model_name
    pretrained = weights == PRETRAINED
    try:
        with seeded_init(seed):
            model = timm.create_model(model_name, pretrained=pretrained, num_classes=0)
    except Exception as exc:
        if not pretrained:
            raise BackboneError(f"{name}: timm cannot build this model: {exc}") from exc
        raise WeightsError(
            f"{name}: timm could not load its pretrained weights ({exc}). Put the checkpoint in "
            "timm's Hugging Face cache ($HF_HOME/hub; fetch it once on a machine with network), "
            "or pass an explicit weights file path, or use weights: random"
        ) from exc
    if pretrained:
        info = WeightsInfo(kind=PRETRAINED, source="timm cache")
    elif weights == RANDOM:
        info = random_weights(seed)
    else:
        path = Path(weights).expanduser()
        sha = verify_weights_file(path, recorded_sha256(path, weights_sha256))
        classifier = str(getattr(model, "default_cfg", {}).get("classifier", "head"))
        apply_state_dict(
            model, read_state_dict(path), source=str(path), head_prefixes=(classifier,)
        )
        info = WeightsInfo(kind="file", source="file", path=str(path), sha256=sha)
    config = timm.data.resolve_model_data_config(model)
    _, height, width = config["input_size"]
    if height != width:
        raise BackboneError(f"{name}: input size {height}x{width} is not square")
    transform = TransformSpec(
        input_px=int(height),
        mean=tuple(float(v) for v in config["mean"]),  # type: ignore[arg-type]
        std=tuple(float(v) for v in config["std"]),  # type: ignore[arg-type]
    )
    return freeze(name, model, transform, int(model.num_features), info)
