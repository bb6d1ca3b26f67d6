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

import numpy as np
from pydantic import Field

from bpnet.base.schema import Integer, Model, Number, validate

SIDE = 28
MAX_SIGMA = 1000.0  # the elastic field's Gaussian kernel has 8·sigma + 57 entries


class AugmentSettings(Model):
    """How strongly each training batch is distorted (a config's ``augment`` section); every
    strength 0 (the default) is no augmentation."""

    shift: Integer = Field(
        0,
        ge=0,
        le=SIDE // 2,
        description=("Largest shift in whole pixels; each image draws dy, dx in ±shift."),
    )
    rotate: Number = Field(0.0, ge=0, le=180, description="Largest rotation in degrees.")
    scale: Number = Field(
        0.0, ge=0, lt=1, description=("Largest zoom: the factor is uniform in 1 ± scale.")
    )
    shear: Number = Field(0.0, ge=0, lt=90, description="Largest shear angle in degrees.")
    elastic_alpha: Number = Field(
        0.0, ge=0, description=("Elastic distortion strength in pixels; 0: off.")
    )
    elastic_sigma: Number = Field(
        4.0,
        gt=0,
        le=MAX_SIGMA,
        description=(
            "Smoothness of the elastic field in pixels (beyond about 100, one shift for the whole "
            "28x28 image)."
        ),
    )


def gaussian_matrix(size, sigma, step=1, dtype=np.float32):
    """(size, ceil(size / step)) matrix G such that G @ u @ G.T is white noise u, drawn on a grid
    ``step`` pixels apart, smoothed by a normalised Gaussian of width sigma onto ``size`` pixels
    (zeros beyond the edges). The √step factor keeps the field's variance that of noise drawn
    at every pixel; for step ≤ sigma the two fields have the same spread and smoothness (within
    2% at sigma 2 to 8), while there are step² times fewer random numbers to draw."""
    m = math.ceil(size / step)
    fine, coarse = np.arange(size)[:, None], np.arange(m)[None, :] * step + (step - 1) / 2
    g = np.exp(-((fine - coarse) ** 2) / (2.0 * sigma**2))
    k = np.arange(-4 * math.ceil(sigma) - size, 4 * math.ceil(sigma) + size + 1)
    return (g * math.sqrt(step) / np.exp(-(k**2) / (2.0 * sigma**2)).sum()).astype(dtype)


class Augmenter:
    """Random distortion of image batches; ``augmenter(x)`` returns a new distorted batch.

    ``settings`` are the fields of :class:`AugmentSettings` (shift: largest shift in whole
    pixels, each image drawing dy, dx from -shift..shift; rotate: largest rotation in degrees;
    scale: largest relative zoom, a factor in 1±scale; shear: largest shear angle in degrees;
    elastic_alpha: strength of the elastic field in pixels, 0: off; elastic_sigma: its
    smoothness in pixels), each 0 unless given. All draws are uniform and come from ``rng``
    (a seed or ``np.random.Generator``), so a seeded run is reproducible.
    x: (N, 784) or any (N, …) holding N 28×28 images, any float dtype, pixels 0..1 or 0..255.
    Every strength 0 makes it a no-op (it returns a copy).
    """

    def __init__(self, rng=None, **settings):
        self.settings = validate(AugmentSettings, settings, "Augmenter", "augment.").model_dump()
        for key, value in self.settings.items():
            setattr(self, key, value)
        self.rng = np.random.default_rng(rng)
        # Centred pixel coordinates (x, y, 1) of the 784 output pixels, for one matrix product.
        gy, gx = np.mgrid[0:SIDE, 0:SIDE].reshape(2, -1) - (SIDE - 1) / 2.0
        self._grid = np.stack([gx, gy, np.ones(SIDE * SIDE)]).astype(np.float32)
        if self.elastic_alpha:  # noise on a grid sigma apart: 16x fewer draws at sigma 4
            g = gaussian_matrix(SIDE, self.elastic_sigma, max(1, int(self.elastic_sigma)))
            self._smooth_left, self._smooth_right = g * np.float32(self.elastic_alpha), g.T.copy()
        self._padded = None  # zero-bordered batch buffer, reused while N and dtype stay the same

    @classmethod
    def from_config(cls, config, rng=None):
        """From the ``augment`` section of a config: a dict (missing keys take the defaults of
        :class:`AugmentSettings`) or None (no augmentation)."""
        if config is None:
            return cls(rng=rng)
        if not isinstance(config, dict):
            validate(AugmentSettings, config, "config", "augment.")
        return cls(rng=rng, **config)

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
        if x.size != n * SIDE * SIDE or x.dtype.kind != "f":
            raise ValueError(
                f"expected a float batch of {SIDE}x{SIDE} images, got shape "
                f"{x.shape} and dtype {x.dtype}"
            )
        images = x.reshape(n, SIDE, SIDE)
        if not (self.rotate or self.scale or self.shear or self.elastic_alpha):
            return self._shifted(images).reshape(x.shape)
        return self._bilinear(images, self.source_points(n)).reshape(x.shape)

    def source_points(self, n):
        """Source coordinates of every output pixel for a batch of n images: (2, n, 784)
        float32, rows first, then columns."""
        rng, f32 = self.rng, np.float32

        def draw(limit):  # n uniform draws in [-limit, limit]; zeros (drawing nothing) for 0
            return rng.uniform(-limit, limit, n) if limit else np.zeros(n)

        ty, tx = rng.integers(-self.shift, self.shift + 1, size=(2, n))
        theta = np.deg2rad(draw(self.rotate))
        zoom = 1.0 + draw(self.scale)
        k = np.tan(np.deg2rad(draw(self.shear)))
        # The image is moved by A = R(theta)·zoom·[[1, k], [0, 1]] about its centre, then by t;
        # each output pixel p reads the source at A⁻¹(p − centre − t) + centre.
        c, s = np.cos(theta), np.sin(theta)
        m00, m01, m10, m11 = np.stack([c + k * s, s - k * c, -s, c]) / zoom  # A⁻¹, (x, y) order
        centre = (SIDE - 1) / 2.0
        coef = np.empty((2, n, 3), dtype=f32)  # per image: row = (a, b, c)·(x, y, 1) of the grid
        coef[0] = np.stack([m10, m11, centre - m10 * tx - m11 * ty], axis=1)
        coef[1] = np.stack([m00, m01, centre - m00 * tx - m01 * ty], axis=1)
        src = coef.reshape(2 * n, 3) @ self._grid
        if self.elastic_alpha:
            m = self._smooth_right.shape[0]
            field = rng.random((2 * n, m, m), dtype=f32) * f32(2) - f32(1)
            src += (self._smooth_left @ field @ self._smooth_right).reshape(2 * n, -1)
        return src.reshape(2, n, SIDE * SIDE)

    def _pad(self, images, border):
        """images (n, 28, 28) inside a zero border, flattened; the buffer is reused."""
        n, w = images.shape[0], SIDE + 2 * border
        if (
            self._padded is None
            or self._padded.shape != (n, w, w)
            or self._padded.dtype != images.dtype
        ):
            self._padded = np.zeros((n, w, w), dtype=images.dtype)
        self._padded[:, border : border + SIDE, border : border + SIDE] = images
        return self._padded.reshape(-1)

    def _shifted(self, images):
        """Each image moved by whole pixels (the shift-only case): one gather, no weights."""
        n, s = images.shape[0], self.shift
        w = SIDE + 2 * s
        flat = self._pad(images, s)
        dy, dx = self.rng.integers(-s, s + 1, size=(2, n))
        rows, cols = np.divmod(np.arange(SIDE * SIDE), SIDE)
        start = np.arange(n) * (w * w) - dy * w - dx  # where each image's (−s, −s) corner reads
        return np.take(flat, start[:, None] + ((rows + s) * w + cols + s))

    def _bilinear(self, images, src):
        """Read images (n, 28, 28) at the source points src (2, n, 784) (overwritten), with 0
        for points outside the image."""
        n, w = images.shape[0], SIDE + 4
        flat = self._pad(images, 2)
        src += 2  # into the padded frame; clipping then sends far points into its zero border
        np.clip(src, 0, w - 1.001, out=src)
        low = np.floor(src)
        src -= low  # now the fraction of the way to the next pixel
        corner = low[0]
        corner *= w
        corner += low[1]  # exact: whole numbers below 2**24
        idx = corner.astype(np.intp)
        idx += (np.arange(n) * (w * w))[:, None]
        fy, fx = src.astype(images.dtype, copy=False)
        # the four neighbours: the same index into the buffer shifted by 0, 1, w and w + 1
        a, b, c, d = (np.take(flat[offset:], idx) for offset in (0, 1, w, w + 1))
        b -= a
        b *= fx
        a += b  # along the upper row
        d -= c
        d *= fx
        c += d  # along the lower row
        c -= a
        c *= fy
        a += c
        # Rounding may overshoot the convex combination by an ulp; keep [0, max] exact.
        return np.clip(a, 0, images.max(), out=a)
