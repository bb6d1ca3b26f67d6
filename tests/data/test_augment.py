"""Augmenter: exact integer shifts, identity, shapes, bounds, determinism, conserved mass."""

import numpy as np
import pytest

from bpnet.data.augment import Augmenter, gaussian_matrix
from bpnet.errors import InputError
from bpnet.training.config import defaults


def dots(n, dtype=np.float32, value=1.0):
    """n images, each a single lit pixel at (14, 13), flattened to (n, 784)."""
    x = np.zeros((n, 28, 28), dtype=dtype)
    x[:, 14, 13] = value
    return x.reshape(n, 784)


def test_shift_moves_a_pixel_by_whole_pixels_within_two():
    x = dots(500)
    y = Augmenter(shift=2, rng=np.random.default_rng(3))(x).reshape(-1, 28, 28)
    moves = set()
    for img in y:
        (r,), (c,) = np.nonzero(img > 0)[0], np.nonzero(img > 0)[1]
        assert img[r, c] == 1.0 and np.count_nonzero(img) == 1  # content kept, not blurred
        moves.add((r - 14, c - 13))
    assert moves == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}


def test_shift_of_a_real_digit_is_a_translation(mnist_session_dir):
    from bpnet.data.idx import load_split

    x = load_split(mnist_session_dir, "mnist", "test")[0][:50].astype(np.float32)
    y = Augmenter(shift=2, rng=5)(x.reshape(50, -1)).reshape(50, 28, 28)
    for a, b in zip(x, y):
        padded = np.pad(a, 2)
        assert any(
            np.array_equal(b, padded[2 - dy : 30 - dy, 2 - dx : 30 - dx])
            for dy in range(-2, 3)
            for dx in range(-2, 3)
        )


def test_shift_only_path_equals_the_general_warp():
    """A pure shift takes a one-gather shortcut; a zoom too small to change a float32 factor
    goes the general (bilinear) way with the same shifts drawn: the results are identical."""
    x = np.random.default_rng(0).random((64, 784)).astype(np.float32)
    fast = Augmenter(shift=2, rng=7)(x)
    general = Augmenter(shift=2, scale=1e-12, rng=7)(x)
    assert np.array_equal(fast, general) and not np.array_equal(fast, x)


def test_zero_strengths_are_the_identity():
    x = np.random.default_rng(0).random((7, 784)).astype(np.float32)
    aug = Augmenter(shift=0, rng=0)
    assert not aug.active
    y = aug(x)
    assert y is not x and np.array_equal(x, y)
    assert Augmenter.from_config(None)(x).tolist() == x.tolist()


@pytest.mark.parametrize("dtype,top", [(np.float32, 1.0), (np.float64, 255.0)])
@pytest.mark.parametrize("shape", [(9, 784), (9, 1, 28, 28), (9, 28, 28)])
def test_shape_dtype_and_range_are_kept(dtype, top, shape):
    x = (np.random.default_rng(1).random(shape) * top).astype(dtype)
    aug = Augmenter(shift=2, rotate=20, scale=0.2, shear=15, elastic_alpha=40, rng=2)
    y = aug(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.min() >= 0 and y.max() <= x.max()
    assert not np.array_equal(x, y)


def test_other_shapes_and_integer_pixels_are_refused():
    aug = Augmenter(rotate=5, rng=0)
    with pytest.raises(ValueError, match="float batch of 28x28 images"):
        aug(np.zeros((4, 100), np.float32))
    with pytest.raises(ValueError, match="dtype uint8"):
        aug(np.zeros((4, 784), np.uint8))


def test_same_seed_same_batches_different_seed_different():
    x = dots(20)
    kw = dict(shift=2, rotate=10, scale=0.1, shear=10, elastic_alpha=34)
    a, b, c = Augmenter(**kw, rng=11), Augmenter(**kw, rng=11), Augmenter(**kw, rng=12)
    first = [a(x), a(x)]
    assert np.array_equal(first[0], b(x)) and np.array_equal(first[1], b(x))
    assert not np.array_equal(first[0], first[1])
    assert not np.array_equal(first[0], c(x))


def test_small_affine_roughly_conserves_ink(mnist_session_dir):
    """Rotation and shear keep area and a zoom within ±5% changes it by at most 10%, so the ink
    of each real digit is kept within 25% (bilinear resampling blurs a little) and on average
    within 3%. An elastic field compresses and stretches strokes locally: it keeps the ink on
    average and for a typical digit."""
    from bpnet.data.idx import load_split

    x = load_split(mnist_session_dir, "mnist", "test")[0][:400].reshape(400, -1) / 255.0
    rows = np.arange(28).repeat(28)
    com = lambda im: (im * rows).sum(1) / im.sum(1)  # noqa: E731  (row of the centre of mass)
    affine = Augmenter(shift=2, rotate=10, scale=0.05, shear=10, rng=4)(x)
    ratio = affine.sum(axis=1) / x.sum(axis=1)
    assert abs(ratio.mean() - 1) < 0.03 and np.all(np.abs(ratio - 1) < 0.25)
    assert np.abs(com(affine) - com(x)).max() < 3  # the digit stays put, up to the shift
    elastic = Augmenter(shift=0, elastic_alpha=34, rng=4)(x)
    ratio = elastic.sum(axis=1) / x.sum(axis=1)
    assert abs(ratio.mean() - 1) < 0.03 and np.median(np.abs(ratio - 1)) < 0.15
    assert np.median(np.abs(com(elastic) - com(x))) < 1


def test_rotation_turns_a_bar():
    x = np.zeros((1, 28, 28), np.float32)
    x[0, 13:15, 4:24] = 1.0  # horizontal bar through the centre
    y = Augmenter(shift=0, rotate=90, rng=0)
    out = [y(x.reshape(1, -1)).reshape(28, 28) for _ in range(200)]
    vertical = max(out, key=lambda im: im[4:24, 13:15].sum())  # the draw nearest ±90°
    assert vertical[4:24, 13:15].mean() > 0.5 and vertical[13:15, 4:10].mean() < 0.2


def test_gaussian_matrix_smooths_like_a_normalised_kernel():
    g = gaussian_matrix(28, 4.0, dtype=np.float64)
    assert np.allclose(g, g.T)
    assert g[14].sum() == pytest.approx(1.0, abs=1e-3)  # nearly all the kernel inside
    assert g[0].sum() == pytest.approx(0.5 + g[0, 0] / 2, abs=0.02)  # half of it at an edge


def test_coarse_noise_gives_the_same_elastic_field_statistics():
    """Noise drawn every 4 pixels and smoothed with sigma 4 (what the Augmenter does) has the
    spread and smoothness of noise drawn at every pixel."""
    rng = np.random.default_rng(0)
    fields = {}
    for step in (1, 4):
        g = gaussian_matrix(28, 4.0, step, np.float64)
        assert g.shape == (28, 28 // step)
        fields[step] = g @ rng.uniform(-1, 1, (3000, 28 // step, 28 // step)) @ g.T
    for f in fields.values():
        assert f[:, 14, 14].std() == pytest.approx(fields[1][:, 14, 14].std(), rel=0.05)
        assert np.corrcoef(f[:, 14, 14], f[:, 14, 18])[0, 1] == pytest.approx(0.78, abs=0.04)


def test_from_config_defaults_and_bad_values():
    """The defaults are the config's (AugmentSettings, stated once): every strength 0."""
    aug = Augmenter.from_config({"rotate": 8, "elastic_alpha": 30})
    assert aug.settings == {
        "shift": 0,
        "rotate": 8.0,
        "scale": 0.0,
        "shear": 0.0,
        "elastic_alpha": 30.0,
        "elastic_sigma": 4.0,
    }
    assert Augmenter().settings == defaults()["augment"]
    assert not Augmenter().active
    for config, message in [
        ({"rotaet": 5}, "augment.rotaet: unknown key"),
        ({"shift": 1.5}, "augment.shift"),
        ({"scale": 1.0}, "augment.scale"),
        ({"rotate": -1}, "augment.rotate"),
        ({"elastic_sigma": 0}, "augment.elastic_sigma"),
        ({"shear": True}, "augment.shear"),
        ([1, 2], "augment: expected a mapping"),
    ]:
        with pytest.raises(InputError, match=message):
            Augmenter.from_config(config)
