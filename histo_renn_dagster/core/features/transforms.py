"""Eval transforms run on the device: uint8 NHWC tiles -> normalised float NCHW (channels_last).

Tiles travel to the device as uint8 (a quarter of the bytes of float32) and become float there.
A tile is resized whole to the backbone's input size (598 -> 299 for Inception-v3, as the
reference does) with antialiased bilinear filtering, the filter PIL's bilinear resize uses; it is
never cropped, so every sampled pixel of tissue is seen. Scaling to [0, 1] and the per-channel
normalisation are folded into one multiply-add.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TransformSpec:
    """What a backbone expects: square ``input_px`` input, ``(x / 255 - mean) / std``."""

    input_px: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def as_record(self) -> dict[str, object]:
        return {"input_px": self.input_px, "mean": list(self.mean), "std": list(self.std)}


def preprocess_tiles(tiles: torch.Tensor, spec: TransformSpec) -> torch.Tensor:
    """``(B, H, W, 3)`` uint8 on any device -> ``(B, 3, S, S)`` float32, channels_last, same device."""
    if tiles.dtype != torch.uint8 or tiles.ndim != 4 or tiles.shape[-1] != 3:
        raise ValueError(
            f"expected (B, H, W, 3) uint8 tiles, found {tuple(tiles.shape)} {tiles.dtype}"
        )
    # NHWC memory permuted to NCHW is already the channels_last layout: no copy here.
    x = tiles.permute(0, 3, 1, 2).float()
    size = spec.input_px
    if x.shape[-2:] != (size, size):
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    std = torch.tensor(spec.std, dtype=torch.float32, device=x.device)
    mean = torch.tensor(spec.mean, dtype=torch.float32, device=x.device)
    scale = (1.0 / (255.0 * std)).view(1, 3, 1, 1)
    shift = (-mean / std).view(1, 3, 1, 1)
    return torch.addcmul(shift, x, scale).contiguous(memory_format=torch.channels_last)
