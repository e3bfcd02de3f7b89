"""Pixel synthesis for the synthetic H&E slides: tissue shapes, stroma texture, nuclei, stain colour.

The colour model is Beer-Lambert, as in real brightfield microscopy: each pixel holds a hematoxylin
and an eosin concentration, and its RGB intensity is ``I0 * exp(-(h * H + e * E))`` with H and E the
stain's optical-density vectors. A site-specific stain therefore shifts colours the way real staining
batches do (darker/lighter, bluer/redder), which is the batch effect the random-effects model needs.

Everything smooth (tissue outline, eosin variation) is drawn once on a coarse grid of 16x16 px cells
and bilinearly interpolated band by band; fine texture comes from small periodic noise patches that
are tiled. So a band costs a handful of vectorised passes and memory stays bounded by the band size
plus a few coarse arrays, independent of the slide height.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from histo_renn_dagster.core.errors import SlideSpecError

# Coarse grid cell in level-0 px. Equal to the smallest pyramid downsample (16) so every slide whose
# sides are multiples of 16 has a whole number of cells.
CELL = 16
# Concentration ranges mapped onto 256 levels each for the colour look-up table.
H_MAX = 2.0
E_MAX = 1.4
# Glass background intensity (slightly blue-white, like a real scan) and its luminance noise.
BACKGROUND_RGB = (243.0, 244.0, 247.0)
BACKGROUND_NOISE = 2.0
# Nuclear number density at nuclear_density = 1, per square micrometre of tissue: with nuclei of
# about 25 um^2 this covers roughly a third of the tissue, close to a densely cellular carcinoma.
NUCLEI_PER_UM2 = 0.013
# Width of the tissue/glass transition, micrometres.
EDGE_UM = 4.0


@dataclass(frozen=True)
class Stain:
    """Optical-density vectors (absorbance per unit concentration in R, G, B) of the two dyes."""

    hematoxylin: tuple[float, float, float]
    eosin: tuple[float, float, float]

    def __post_init__(self) -> None:
        for name in ("hematoxylin", "eosin"):
            vec = tuple(float(v) for v in getattr(self, name))
            if len(vec) != 3 or not all(np.isfinite(v) and v >= 0 for v in vec) or sum(vec) <= 0:
                raise SlideSpecError(
                    f"stain {name} vector must be 3 finite non-negative optical densities "
                    f"(not all zero), got {getattr(self, name)!r}"
                )
            object.__setattr__(self, name, vec)  # lists become tuples: hashable, comparable


# The H&E reference optical-density vectors commonly used with Macenko stain normalisation.
REFERENCE_STAIN = Stain(hematoxylin=(0.5626, 0.7201, 0.4062), eosin=(0.2159, 0.8012, 0.5581))


def _periodic_texture(
    rng: np.random.Generator, size: int, scale_px: float, anisotropy: float
) -> np.ndarray:
    """Zero-mean, unit-variance noise on a torus of ``size`` px, smooth over ``scale_px``.

    Filtering white noise in the Fourier domain makes it exactly periodic, so tiling it leaves no
    seams; ``anisotropy`` > 1 stretches it along a random direction (collagen fibres).
    """
    white = rng.standard_normal((size, size))
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    theta = rng.uniform(0.0, np.pi)
    along = fx * np.cos(theta) + fy * np.sin(theta)
    across = -fx * np.sin(theta) + fy * np.cos(theta)
    envelope = np.exp(-2.0 * (np.pi * scale_px) ** 2 * ((along * anisotropy) ** 2 + across**2))
    tex = np.fft.ifft2(np.fft.fft2(white) * envelope).real
    tex -= tex.mean()
    tex /= tex.std() + 1e-12
    # Bounded to 4 SD so the tissue-span test in paint_band is exact (see _tissue_span).
    return np.clip(tex, -4.0, 4.0).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    noise = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), max(sigma, 0.5))
    return noise / (noise.std() + 1e-6)


def _tissue_field(
    rng: np.random.Generator, gh: int, gw: int, fraction: float
) -> tuple[np.ndarray, float]:
    """A few warped elliptical blobs on the coarse grid and the level giving ``fraction`` tissue."""
    s = float(min(gh, gw))
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
    # Domain warping bends the ellipses into irregular, lobed shapes.
    warp = 0.10 * s
    xx = xx + warp * _smooth_noise(rng, (gh, gw), s / 8)
    yy = yy + warp * _smooth_noise(rng, (gh, gw), s / 8)
    field = np.zeros((gh, gw), np.float32)
    for _ in range(int(rng.integers(2, 5))):
        cy, cx = rng.uniform(0.25, 0.75) * gh, rng.uniform(0.25, 0.75) * gw
        ry, rx = rng.uniform(0.12, 0.30, size=2) * s
        theta = rng.uniform(0.0, np.pi)
        dx, dy = xx - cx, yy - cy
        u = (dx * np.cos(theta) + dy * np.sin(theta)) / rx
        v = (-dx * np.sin(theta) + dy * np.cos(theta)) / ry
        field += np.float32(rng.uniform(0.7, 1.0)) * np.exp(-0.5 * (u * u + v * v))
    field *= 1.0 + 0.2 * _smooth_noise(rng, (gh, gw), s / 30)
    # Keep tissue off the slide border, as on a real glass slide.
    margin = max(2.0, 0.04 * s)
    ramp_y = np.clip(np.minimum(np.arange(gh) + 0.5, gh - 0.5 - np.arange(gh)) / margin, 0, 1)
    ramp_x = np.clip(np.minimum(np.arange(gw) + 0.5, gw - 0.5 - np.arange(gw)) / margin, 0, 1)
    field *= (ramp_y[:, None] * ramp_x[None, :]).astype(np.float32)
    level = float(np.quantile(field, 1.0 - fraction))
    return field, level


def _wide(tex: np.ndarray, width: int, offset: int) -> np.ndarray:
    """Tile a periodic patch horizontally to the slide width once, so bands only gather rows."""
    cols = (np.arange(width) + offset) % tex.shape[1]
    return np.ascontiguousarray(tex[:, cols])


def _colour_lut(stain: Stain) -> np.ndarray:
    """RGB for every (hematoxylin level, eosin level) pair, shape (256, 256, 3)."""
    h = np.linspace(0.0, H_MAX, 256)[:, None, None]
    e = np.linspace(0.0, E_MAX, 256)[None, :, None]
    od = h * np.asarray(stain.hematoxylin) + e * np.asarray(stain.eosin)
    rgb = np.asarray(BACKGROUND_RGB) * np.exp(-od)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


class TissuePainter:
    """Paints horizontal bands of one synthetic H&E slide; the same arguments give the same pixels."""

    def __init__(
        self,
        *,
        seed: int,
        width: int,
        height: int,
        um_per_px: float,
        stain: Stain,
        nuclear_density: float,
        tissue_fraction: float,
    ) -> None:
        if width % CELL or height % CELL:
            raise SlideSpecError(f"slide size {width}x{height} must be multiples of {CELL} px")
        self.width, self.height = width, height
        field_ss, tex_ss, nuc_ss = np.random.SeedSequence(seed).spawn(3)
        gh, gw = height // CELL, width // CELL
        rng = np.random.default_rng(field_ss)
        tissue, self.level = _tissue_field(rng, gh, gw, tissue_fraction)
        # Approximate signed distance (px) to the outline: level offset over the local slope.
        # Interpolated per pixel it gives a crisp edge of fixed physical width at any slope.
        gy, gx = np.gradient(tissue)
        slope = np.maximum(np.hypot(gy, gx) / CELL, 1e-6)
        self.dist = np.clip((tissue - self.level) / slope, -4096, 4096).astype(np.float32)
        self.edge_px = EDGE_UM / um_per_px
        eosin_amount = 0.55 * (1.0 + 0.18 * _smooth_noise(rng, (gh, gw), min(gh, gw) / 12))
        coarse = np.stack([self.dist, eosin_amount], axis=-1).astype(np.float32)
        self.padded = np.pad(coarse, ((1, 1), (1, 1), (0, 0)), mode="edge")

        trng = np.random.default_rng(tex_ss)
        fibre_px = 1.2 / um_per_px  # collagen fibres ~1 um across
        self.fibres = _wide(_periodic_texture(trng, 512, fibre_px, 2.5), width, 0)
        self.mottle = _wide(_periodic_texture(trng, 448, 3.0 / um_per_px, 1.0), width, 97)
        noise = np.rint(trng.standard_normal((509, 509)) * BACKGROUND_NOISE)
        noise3 = np.repeat(noise[..., None], 3, axis=2)
        self.noise_up = _wide(np.clip(noise3, 0, 255).astype(np.uint8), width, 211)
        self.noise_down = _wide(np.clip(-noise3, 0, 255).astype(np.uint8), width, 211)
        self.lut = _colour_lut(stain)
        self.nuclei = self._place_nuclei(np.random.default_rng(nuc_ss), um_per_px, nuclear_density)

    def _place_nuclei(
        self, rng: np.random.Generator, um_per_px: float, density: float
    ) -> np.ndarray:
        """Nucleus ellipses (y, x, semi-major, semi-minor px, angle deg, darkness), sorted by y.

        A Poisson process thinned by the tissue outline and a smooth cellularity field: the expected
        count per tissue area is proportional to ``density`` and nothing else depends on it except a
        mild growth of nuclear size (pleomorphism), so darker-nuclei-per-area rises monotonically.
        """
        area_um2 = self.width * self.height * um_per_px**2
        n = int(rng.poisson(NUCLEI_PER_UM2 * density * area_um2))
        # On a 1/16 px grid: exact in float64, so band offsets shift the fixed-point centres exactly.
        y = np.floor(rng.uniform(0, self.height, n) * 16) / 16
        x = np.floor(rng.uniform(0, self.width, n) * 16) / 16
        gh, gw = self.dist.shape
        cy = np.clip((y / CELL).astype(np.intp), 0, gh - 1)
        cx = np.clip((x / CELL).astype(np.intp), 0, gw - 1)
        cellularity = 0.5 + 0.5 * np.clip(_smooth_noise(rng, (gh, gw), min(gh, gw) / 10), -1, 1)
        inside = self.dist[cy, cx] > self.edge_px
        keep = inside & (rng.uniform(0, 1, n) < cellularity[cy, cx])
        k = int(keep.sum())
        size = (0.9 + 0.25 * density) / um_per_px
        major = rng.uniform(2.6, 4.6, k) * size
        minor = major * rng.uniform(0.55, 0.9, k)
        angle = rng.uniform(0, 180, k)
        dark = rng.uniform(0.65, 1.0, k)
        out = np.stack([y[keep], x[keep], major, minor, angle, dark], axis=1)
        return out[np.argsort(out[:, 0], kind="stable")]

    def _tissue_span(self, y0: int, y1: int) -> tuple[int, int]:
        """Level-0 column range (multiples of CELL) that may hold tissue in rows ``y0:y1``.

        A pixel's interpolated distance never exceeds its four neighbouring cells', and opacity is
        ``dist / edge + 0.5 + 0.5 * fibres`` with fibres within +-4: cells below ``-3 * edge - CELL``
        cannot make any pixel opaque, so painting only the span changes no pixel.
        """
        j0, j1 = max(y0 // CELL - 1, 0), min(-(-y1 // CELL) + 1, self.dist.shape[0])
        cols = np.flatnonzero((self.dist[j0:j1] > -3 * self.edge_px - CELL).any(axis=0))
        if cols.size == 0:
            return 0, 0
        return max(int(cols[0]) - 1, 0) * CELL, min(int(cols[-1]) + 2, self.dist.shape[1]) * CELL

    def _fields(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Bilinear upsampling of the coarse fields onto pixels ``y0:y1, x0:x1`` (multiples of CELL).

        One coarse cell of context on every side (edge-replicated) means each pixel sees the same
        neighbours whatever block it is computed in, so bands and spans join seamlessly.
        """
        block = self.padded[y0 // CELL : y1 // CELL + 2, x0 // CELL : x1 // CELL + 2]
        up = cv2.resize(
            block, (block.shape[1] * CELL, block.shape[0] * CELL), interpolation=cv2.INTER_LINEAR
        )
        return up[CELL:-CELL, CELL:-CELL]

    def _draw_nuclei(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        if len(self.nuclei) == 0:
            return np.zeros((y1 - y0, x1 - x0), np.uint8)
        # OpenCV's anti-aliased fill rasterises a polygon cut by the image border differently from
        # the uncut one, so draw with a margin wider than any nucleus and crop: every nucleus that
        # shows is drawn whole, and neighbouring bands agree pixel for pixel.
        m = int(np.ceil(self.nuclei[:, 2].max())) + 2
        buf = np.zeros((y1 - y0 + 2 * m, x1 - x0 + 2 * m), np.uint8)
        lo = np.searchsorted(self.nuclei[:, 0], y0 - m)
        hi = np.searchsorted(self.nuclei[:, 0], y1 + m)
        for y, x, major, minor, angle, dark in self.nuclei[lo:hi]:
            # 4 fractional bits: sub-pixel placement.
            cv2.ellipse(
                buf,
                (int((x - x0 + m) * 16), int((y - y0 + m) * 16)),
                (int(major * 16), int(minor * 16)),
                float(angle),
                0,
                360,
                int(dark * 255),
                -1,
                cv2.LINE_AA,
                4,
            )
        return buf[m:-m, m:-m]

    def paint_band(self, y0: int, y1: int) -> np.ndarray:
        """RGB uint8 pixels of level-0 rows ``y0:y1`` (full width; y0, y1 multiples of CELL)."""
        bh = y1 - y0
        out = np.empty((bh, self.width, 3), np.uint8)
        out[:] = self.lut[0, 0]
        x0, x1 = self._tissue_span(y0, y1)
        if x1 > x0:
            out[:, x0:x1] = self._paint_tissue(y0, y1, x0, x1)
        # Luminance noise everywhere (glass too), as a camera adds; saturating uint8 arithmetic.
        rows = np.arange(y0, y1) % self.noise_up.shape[0]
        cv2.add(out, np.take(self.noise_up, rows, axis=0), dst=out)
        cv2.subtract(out, np.take(self.noise_down, rows, axis=0), dst=out)
        return out

    def _paint_tissue(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        fields = self._fields(y0, y1, x0, x1)
        fibres = np.take(self.fibres, np.arange(y0, y1) % self.fibres.shape[0], axis=0)[:, x0:x1]
        mottle = np.take(self.mottle, np.arange(y0, y1) % self.mottle.shape[0], axis=0)[:, x0:x1]
        # Tissue opacity: 0 on glass, 1 inside; the fibre texture roughens the outline.
        alpha = fields[..., 0] * np.float32(1 / self.edge_px)
        alpha += np.float32(0.5)
        alpha += np.float32(0.5) * fibres
        np.clip(alpha, 0.0, 1.0, out=alpha)
        nuc = self._draw_nuclei(y0, y1, x0, x1).astype(np.float32)
        nuc *= np.float32(1 / 255)
        # Eosin: stroma amount x fibre texture, partly displaced inside nuclei.
        eosin = np.clip(fibres, -2.0, 2.0)
        eosin *= np.float32(0.15)
        eosin += np.float32(0.85)
        eosin *= fields[..., 1]
        eosin += np.float32(0.08) * mottle
        eosin *= np.float32(1.0) - np.float32(0.4) * nuc
        eosin *= alpha
        eosin *= np.float32(255 / E_MAX)
        # Hematoxylin: faint background counterstain plus the nuclei with coarse chromatin.
        haem = np.float32(0.3) * mottle
        haem += np.float32(1.3)
        haem *= nuc
        haem += np.float32(0.06) + np.float32(0.03) * mottle
        haem *= alpha
        haem *= np.float32(255 / H_MAX)
        np.clip(eosin, 0, 255, out=eosin)
        np.clip(haem, 0, 255, out=haem)
        # The colour table as a 256x256 image indexed by (eosin, hematoxylin) levels.
        return cv2.remap(self.lut, eosin, haem, cv2.INTER_NEAREST)
