"""Per-tile quality control: pen ink (by hue) and blur (by Laplacian variance).

Both are computed on a 2x area-downsampled copy of the tile: four times cheaper, and at 1 um/px
an in-focus H&E tile still has strong second derivatives (variance in the thousands on the CMU
slide) while a defocused one drops to single digits.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class QCSpec:
    # OpenCV hue is 0-180. H&E stains sit at 120-180 (purple to pink); green/cyan/blue marker
    # ink sits at 35-100. Hematoxylin's bluest pixels reach ~100-120, so the range stops at 100.
    pen_hue_range: tuple[int, int] = (35, 100)
    pen_min_saturation: int = 77  # 0.3 on a 0-1 scale: faint hues are glass or compression noise
    pen_max_fraction: float = 0.05
    blur_min_laplacian_var: float = 100.0


@dataclass(frozen=True)
class TileQC:
    pen_fraction: float
    laplacian_var: float
    pen: bool
    blur: bool


def assess_tile(rgb: np.ndarray, spec: QCSpec) -> TileQC:
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    lo, hi = spec.pen_hue_range
    # One OpenCV pass for hue in [lo, hi) and saturation >= the minimum (integer bounds, so the
    # inclusive upper hue bound hi - 1 is the same set as hue < hi).
    pen = cv2.inRange(hsv, (lo, spec.pen_min_saturation, 0), (hi - 1, 255, 255))
    pen_fraction = cv2.countNonZero(pen) / pen.size
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    _, std = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_16S))
    lap_var = float(std[0, 0]) ** 2
    return TileQC(
        pen_fraction=pen_fraction,
        laplacian_var=lap_var,
        pen=pen_fraction > spec.pen_max_fraction,
        blur=lap_var < spec.blur_min_laplacian_var,
    )
