"""Random distortions of MNIST batches: shifts, affine maps and elastic fields, batch-wise in NumPy.

Every distortion maps each output pixel back to the point of the source image it reads from.
For a batch of N images the source points are two (N, 784) arrays built from one shared
centred pixel grid: an inverse affine map per image (rotation, scale, shear, integer shift),
plus an elastic displacement field (Simard et al., 2003: uniform noise in [-1, 1] smoothed by
a Gaussian of width ``elastic_sigma`` and scaled by ``elastic_alpha``; the smoothing is a
product with a 28×28 Gaussian matrix on each side, one matrix product for the whole batch).
One bilinear gather from a zero-bordered copy of the batch then reads every pixel at once.
Bilinear weights are a convex combination, so outputs stay within [0, max of the input];
integer coordinates read pixels exactly, so a pure shift moves content without blurring it.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .errors import InputError

SIDE = 28
DEFAULTS = {"shift": 2, "rotate": 0.0, "scale": 0.0, "shear": 0.0,
            "elastic_alpha": 0.0, "elastic_sigma": 4.0}
# key -> (lowest allowed, highest allowed, whether the upper bound is excluded, meaning)
LIMITS = {
    "shift": (0, SIDE // 2, False, "whole pixels"),
    "rotate": (0.0, 180.0, False, "degrees"),
    "scale": (0.0, 1.0, True, "a fraction below 1"),
    "shear": (0.0, 90.0, True, "degrees below 90"),
    "elastic_alpha": (0.0, math.inf, True, "pixels"),
    "elastic_sigma": (0.0, math.inf, True, "pixels"),
}


def _checked(key, value):
    """``value`` as a number within LIMITS[key], or InputError naming ``augment.key``."""
    lo, hi, open_hi, what = LIMITS[key]
    kind = numbers.Integral if key == "shift" else numbers.Real
    ok = isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and lo <= value and (value < hi if open_hi else value <= hi)
    if key == "elastic_sigma":
        ok = ok and value > 0
    if not ok:
        top = "" if hi == math.inf else (f" and < {hi:g}" if open_hi else f" and <= {hi:g}")
        low = "> 0" if key == "elastic_sigma" else f">= {lo:g}"
        raise InputError(f"augment.{key}: expected a number {low}{top} ({what}), got {value!r}")
    return int(value) if key == "shift" else float(value)


def gaussian_matrix(size, sigma, dtype=np.float32):
    """(size, size) matrix G such that G @ f smooths f along its first axis with a normalised
    Gaussian of width sigma (zeros beyond the edges)."""
    d = np.arange(size)
    g = np.exp(-((d[:, None] - d[None, :]) ** 2) / (2.0 * sigma ** 2))
    k = np.arange(-4 * math.ceil(sigma) - size, 4 * math.ceil(sigma) + size + 1)
    return (g / np.exp(-(k ** 2) / (2.0 * sigma ** 2)).sum()).astype(dtype)


class Augmenter:
    """Random distortion of image batches; ``augmenter(x)`` returns a new distorted batch.

    shift: largest shift in whole pixels (each image draws dy, dx from -shift..shift);
    rotate: largest rotation in degrees; scale: largest relative zoom (factor in 1±scale);
    shear: largest shear angle in degrees; elastic_alpha: strength of the elastic field in
    pixels (0: off); elastic_sigma: its smoothness in pixels. All draws are uniform and come
    from ``rng`` (a seed or ``np.random.Generator``), so a seeded run is reproducible.
    x: (N, 784) or any (N, …) holding N 28×28 images, any float dtype, pixels 0..1 or 0..255.
    Every strength 0 makes it a no-op (it returns a copy).
    """

    def __init__(self, shift=2, rotate=0.0, scale=0.0, shear=0.0, elastic_alpha=0.0,
                 elastic_sigma=4.0, rng=None):
        given = dict(shift=shift, rotate=rotate, scale=scale, shear=shear,
                     elastic_alpha=elastic_alpha, elastic_sigma=elastic_sigma)
        self.settings = {k: _checked(k, v) for k, v in given.items()}
        for key, value in self.settings.items():
            setattr(self, key, value)
        self.rng = np.random.default_rng(rng)
        centre = (SIDE - 1) / 2.0
        gy, gx = np.mgrid[0:SIDE, 0:SIDE].reshape(2, -1).astype(np.float32) - np.float32(centre)
        self._grid_y, self._grid_x, self._centre = gy, gx, np.float32(centre)
        self._gauss = gaussian_matrix(SIDE, self.elastic_sigma) if self.elastic_alpha else None
        self._padded = None  # zero-bordered batch buffer, reused while N and dtype stay the same

    @classmethod
    def from_config(cls, config, rng=None):
        """From the ``augment`` section of a config: a dict (missing keys take the defaults)
        or None (no augmentation)."""
        if config is None:
            return cls(shift=0, rng=rng)
        if not isinstance(config, dict):
            raise InputError(f"augment: expected a mapping of {', '.join(DEFAULTS)}, "
                             f"got {config!r}")
        unknown = sorted(set(config) - set(DEFAULTS))
        if unknown:
            raise InputError(f"augment.{unknown[0]}: unknown key (expected one of "
                             f"{', '.join(DEFAULTS)})")
        return cls(**{**DEFAULTS, **config}, rng=rng)

    @property
    def active(self):
        """False when every strength is 0 (the augmenter only copies)."""
        return bool(self.shift or self.rotate or self.scale or self.shear or self.elastic_alpha)

    def __repr__(self):
        return "Augmenter(" + ", ".join(f"{k}={v:g}" for k, v in self.settings.items()) + ")"

    def __call__(self, x):
        x = np.asarray(x)
        if not self.active:
            return x.copy()
        n = x.shape[0]
        if x.size != n * SIDE * SIDE:
            raise ValueError(f"expected a batch of {SIDE}x{SIDE} images, got shape {x.shape}")
        src_y, src_x = self.source_points(n)
        out = self._bilinear(x.reshape(n, SIDE, SIDE), src_y, src_x)
        return out.reshape(x.shape)

    def source_points(self, n):
        """Source coordinates (row, column), each (n, 784) float32, for a batch of n images."""
        rng, f32 = self.rng, np.float32

        def draw(limit):  # n uniform draws in [-limit, limit]; zeros (drawing nothing) for 0
            return rng.uniform(-limit, limit, n) if limit else np.zeros(n)

        t = rng.integers(-self.shift, self.shift + 1, size=(2, n)).astype(f32)
        theta = np.deg2rad(draw(self.rotate))
        zoom = 1.0 + draw(self.scale)
        k = np.tan(np.deg2rad(draw(self.shear)))
        # The image is moved by A = R(theta)·zoom·[[1, k], [0, 1]] about its centre, then by t;
        # each output pixel p reads the source at A⁻¹(p − centre − t) + centre.
        c, s = np.cos(theta), np.sin(theta)
        m = (np.stack([c + k * s, s - k * c, -s, c]) / zoom).astype(f32)  # A⁻¹ in (x, y) order
        off_x = self._centre - m[0] * t[1] - m[1] * t[0]
        off_y = self._centre - m[2] * t[1] - m[3] * t[0]
        gx, gy = self._grid_x, self._grid_y
        src_x = m[0, :, None] * gx + m[1, :, None] * gy + off_x[:, None]
        src_y = m[2, :, None] * gx + m[3, :, None] * gy + off_y[:, None]
        if self.elastic_alpha:
            field = rng.random((2 * n, SIDE, SIDE), dtype=f32) * f32(2) - f32(1)
            field = (self._gauss * f32(self.elastic_alpha)) @ field @ self._gauss
            src_y += field[:n].reshape(n, -1)
            src_x += field[n:].reshape(n, -1)
        return src_y, src_x

    def _bilinear(self, images, src_y, src_x):
        """Read images (n, 28, 28) at (src_y, src_x), each (n, 784) float32 and overwritten;
        points outside the image read 0."""
        n, w = images.shape[0], SIDE + 2
        pad = self._padded
        if pad is None or pad.shape[0] != n or pad.dtype != images.dtype:
            self._padded = np.zeros((n, w, w), dtype=images.dtype)
        self._padded[:, 1:-1, 1:-1] = images
        flat = self._padded.reshape(-1)
        # One zero pixel of border: clipping to [-1, 28] then reads zeros for any point outside.
        corner = np.zeros((n, SIDE * SIDE), dtype=np.intp)
        frac = []
        for src, stride in ((src_y, w), (src_x, 1)):
            np.clip(np.add(src, 1, out=src), 0, w - 1, out=src)
            low = np.minimum(np.floor(src), w - 2)
            corner += low.astype(np.intp) * stride
            frac.append(np.subtract(src, low, out=src).astype(images.dtype, copy=False))
        fy, fx = frac
        corner += (np.arange(n) * (w * w))[:, None]
        a, b = np.take(flat, corner), np.take(flat, corner + 1)
        c, d = np.take(flat, corner + w), np.take(flat, corner + (w + 1))
        top = a + fx * (b - a)
        out = top + fy * ((c + fx * (d - c)) - top)
        # Rounding may overshoot the convex combination by an ulp; keep [0, max] exact.
        return np.clip(out, 0, images.max(), out=out)
