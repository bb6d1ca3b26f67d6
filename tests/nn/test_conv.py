"""Convolution, max pooling, im2col and col2im (bpnet.nn.conv) against naive loops written here,
and their backward passes against centered differences in float64."""

import numpy as np
import pytest

from bpnet.nn import conv, threads
from bpnet.nn.conv import Convolution, Pooling, col2im, conv_output_size, im2col
from bpnet.nn.gradient import numerical_gradient

# (N, C, H, W, FN, FH, FW, stride, pad): odd sizes, C > 1, strides 1-3, pads 0-2
CASES = [
    (2, 1, 5, 5, 3, 3, 3, 1, 0),
    (2, 3, 7, 6, 2, 3, 2, 1, 1),
    (3, 2, 7, 9, 4, 3, 3, 2, 1),
    (2, 2, 9, 8, 3, 4, 3, 3, 2),
    (1, 3, 6, 7, 2, 2, 2, 2, 0),
    (2, 2, 5, 5, 5, 3, 3, 1, 2),
    (2, 4, 5, 7, 2, 5, 3, 1, 2),
]


def naive_im2col(x, fh, fw, stride, pad):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = conv_output_size(h, fh, stride, pad), conv_output_size(w, fw, stride, pad)
    rows = []
    for i in range(n):
        for oy in range(oh):
            for ox in range(ow):
                y, z = oy * stride, ox * stride
                rows.append(xp[i, :, y : y + fh, z : z + fw].reshape(-1))
    return np.array(rows)


def naive_conv(x, W, b, stride, pad):
    n, c, h, w = x.shape
    fn, _, fh, fw = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = conv_output_size(h, fh, stride, pad), conv_output_size(w, fw, stride, pad)
    out = np.zeros((n, fn, oh, ow))
    for i in range(n):
        for f in range(fn):
            for oy in range(oh):
                for ox in range(ow):
                    y, z = oy * stride, ox * stride
                    patch = xp[i, :, y : y + fh, z : z + fw]
                    out[i, f, oy, ox] = np.sum(patch * W[f]) + b[f]
    return out


def naive_pool(x, ph, pw, stride, pad):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = conv_output_size(h, ph, stride, pad), conv_output_size(w, pw, stride, pad)
    out = np.zeros((n, c, oh, ow))
    for oy in range(oh):
        for ox in range(ow):
            y, z = oy * stride, ox * stride
            out[:, :, oy, ox] = xp[:, :, y : y + ph, z : z + pw].max(axis=(2, 3))
    return out


def rel_err(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-300)


@pytest.mark.parametrize("case", CASES)
def test_im2col_matches_loops_and_col2im_is_its_adjoint(case):
    n, c, h, w, _, fh, fw, s, p = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w))
    col = im2col(x, fh, fw, s, p)
    np.testing.assert_array_equal(col, naive_im2col(x, fh, fw, s, p))
    y = rng.standard_normal(col.shape)
    back = col2im(y, x.shape, fh, fw, s, p)
    assert back.shape == x.shape
    assert np.vdot(col, y) == pytest.approx(np.vdot(x, back), rel=1e-12)


def test_col2im_adds_every_read():
    x = np.ones((1, 1, 4, 4))
    counts = col2im(im2col(x, 3, 3, 1, 0), x.shape, 3, 3, 1, 0)
    np.testing.assert_array_equal(
        counts[0, 0], [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]]
    )


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_convolution_forward_matches_loops(case, n_threads):
    n, c, h, w, fn, fh, fw, s, p = case
    rng = np.random.default_rng(1)
    x, W, b = (
        rng.standard_normal((n, c, h, w)),
        rng.standard_normal((fn, c, fh, fw)),
        rng.random(fn),
    )
    with threads.use(n_threads):
        y = Convolution(W, b, s, p).forward(x)
    np.testing.assert_allclose(y, naive_conv(x, W, b, s, p), rtol=1e-12, atol=1e-12)


def conv_gradients(layer, x, g):
    """(analytic dx, dW, db, numerical dx, dW, db) of sum(forward(x) * g)."""

    def f(_):
        return float(np.sum(layer.forward(x) * g))

    num = [numerical_gradient(f, a) for a in (x, layer.W, layer.b)]
    layer.forward(x)
    dx = layer.backward(g)
    return (dx, layer.dW, layer.db), num


@pytest.mark.parametrize("case", CASES)
def test_convolution_backward_matches_centered_differences(case):
    n, c, h, w, fn, fh, fw, s, p = case
    rng = np.random.default_rng(2)
    x, W, b = (
        rng.standard_normal((n, c, h, w)),
        rng.standard_normal((fn, c, fh, fw)),
        rng.random(fn),
    )
    layer = Convolution(W, b, s, p)
    g = rng.standard_normal(layer.forward(x).shape)
    analytic, numerical = conv_gradients(layer, x, g)
    for a, m in zip(analytic, numerical):
        assert a.shape == m.shape
        assert rel_err(a, m) < 1e-8


@pytest.mark.parametrize("sub_block", [conv.SUB_BLOCK, 1])
def test_blocked_layers_are_right_and_the_same_on_any_thread_count(sub_block):
    """A batch large enough to be cut into blocks (and, with ``sub_block`` 1, each block's
    patches copied one image at a time): against the loops, and bit for bit the same outputs
    and gradients on 1, 2 and 3 threads."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 6, 12, 12)).astype(np.float32)
    W = rng.standard_normal((16, 6, 3, 3)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    assert len(conv._bounds(8, 8 * 144 * 54 * 16)) == 2  # below MIN_BLOCKED: one block
    results = []
    for n in (1, 2, 3):
        with threads.use(n), pytest.MonkeyPatch.context() as mp:
            mp.setattr(conv, "MIN_BLOCKED", 0)
            mp.setattr(conv, "SUB_BLOCK", sub_block)
            mp.setattr(threads, "MIN_ELEMENTWISE", 0)
            layer, pool = Convolution(W, b, 1, 1), Pooling(2, 2, stride=2)
            y = layer.forward(x)
            assert len(layer._bounds) == conv.BLOCKS + 1
            z = pool.forward(y)
            dx = layer.backward(pool.backward(z * 0.5))
            results.append([np.array(a) for a in (y, z, dx, layer.dW, layer.db)])
    ref = naive_conv(x.astype(np.float64), W.astype(np.float64), b.astype(np.float64), 1, 1)
    np.testing.assert_allclose(results[0][0], ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(results[0][1], naive_pool(results[0][0], 2, 2, 2, 0))
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


def shifted_by_one_pixel(fn):
    def wrong(*args, **kwargs):
        img = fn(*args, **kwargs)
        return np.roll(img, 1, axis=-1)

    return wrong


def test_a_wrong_index_fails_the_gradient_check(monkeypatch):
    """The checks above can fail: dx shifted by one pixel, in Convolution's own spreading of the
    gradient and in col2im (which the overlapping pools use), is caught."""
    rng = np.random.default_rng(4)
    for case in CASES[:4]:
        n, c, h, w, fn, fh, fw, s, p = case
        x, W = rng.standard_normal((n, c, h, w)), rng.standard_normal((fn, c, fh, fw))
        with monkeypatch.context() as mp:
            for name in ("_transposed_conv", "_add_back"):
                original = getattr(Convolution, name)

                def wrong(self, i, lo, hi, d, dx, original=original):
                    original(self, i, lo, hi, d, dx)
                    dx[...] = np.roll(dx, 1, axis=-1)

                mp.setattr(Convolution, name, wrong)
            layer = Convolution(W, rng.random(fn), s, p)
            g = rng.standard_normal(layer.forward(x).shape)
            (dx, dW, db), (ndx, ndW, ndb) = conv_gradients(layer, x, g)
            assert rel_err(dx, ndx) > 1e-2
            assert rel_err(dW, ndW) < 1e-8  # only dx was broken
    x = rng.standard_normal((2, 2, 7, 7))
    pool = Pooling(3, 3, stride=2, pad=1)
    g = rng.standard_normal(pool.forward(x).shape)
    right = pool_gradient_error(pool, x, g)
    monkeypatch.setattr(conv, "col2im", shifted_by_one_pixel(conv.col2im))
    assert right < 1e-8 < 1e-2 < pool_gradient_error(pool, x, g)


def pool_gradient_error(pool, x, g):
    num = numerical_gradient(lambda _: float(np.sum(pool.forward(x) * g)), x)
    pool.forward(x)
    return rel_err(pool.backward(g), num)


POOLS = [(2, 2, 2, 0), (3, 3, 3, 0), (2, 3, 2, 0), (3, 3, 2, 1), (2, 2, 1, 0), (3, 2, 2, 2)]


@pytest.mark.parametrize("ph, pw, s, p", POOLS)
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (2, 2, 7, 9)])
def test_pooling_forward_and_backward(ph, pw, s, p, shape):
    rng = np.random.default_rng(5)
    x = rng.permutation(np.prod(shape)).reshape(shape) / 7.0  # no ties: a smooth gradient
    pool = Pooling(ph, pw, stride=s, pad=p)
    y = pool.forward(x)
    np.testing.assert_array_equal(y, naive_pool(x, ph, pw, s, p))
    g = rng.standard_normal(y.shape)
    assert pool_gradient_error(pool, x, g) < 1e-8


@pytest.mark.parametrize("ph, pw, s, p", POOLS)
def test_pooling_tie_sends_the_gradient_to_one_input(ph, pw, s, p):
    x = np.ones((1, 2, 6, 6))  # every window a tie (the book pads with zeros: they lose)
    pool = Pooling(ph, pw, stride=s, pad=p)
    y = pool.forward(x)
    dx = pool.backward(np.ones_like(y))
    # the first input of each window (row by row) takes it, as argmax does
    oh, ow = y.shape[2:]
    expected = np.zeros((1, 2, 6 + 2 * p, 6 + 2 * p))
    for oy in range(oh):
        for ox in range(ow):
            y0, x0 = oy * s, ox * s
            cells = [(y0 + a, x0 + b) for a in range(ph) for b in range(pw)]
            inside = [(a, b) for a, b in cells if p <= a < 6 + p and p <= b < 6 + p]
            if inside:  # a window of padding alone has no input to send it to
                expected[:, :, inside[0][0], inside[0][1]] += 1
    assert dx.sum() == expected.sum() > 0  # each output's gradient once, no more
    np.testing.assert_array_equal(dx, expected[:, :, p : p + 6, p : p + 6])


def test_float32_stays_float32_and_first_layer_skips_dx():
    rng = np.random.default_rng(6)
    x = rng.random((4, 3, 10, 10), dtype=np.float32)
    W = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    b = np.zeros(5, np.float32)
    layer, pool = Convolution(W, b, 1, 1), Pooling(2, 2, stride=2)
    y = pool.forward(layer.forward(x))
    assert y.dtype == np.float32
    d = pool.backward(np.ones_like(y))
    assert d.dtype == np.float32
    dx = layer.backward(d)
    assert dx.dtype == layer.dW.dtype == layer.db.dtype == np.float32
    assert dx.shape == x.shape
    dW, db = layer.dW.copy(), layer.db.copy()
    layer.dW[...] = 0
    layer.db[...] = 0
    layer.forward(x)
    assert layer.backward(d, need_dx=False) is None
    np.testing.assert_array_equal(layer.dW, dW)
    np.testing.assert_array_equal(layer.db, db)
    assert Pooling(3, 3, stride=2, pad=1).forward(x).dtype == np.float32


def test_layers_do_not_write_into_their_inputs():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 2, 6, 6))
    W = rng.standard_normal((3, 2, 3, 3))
    keep_x, keep_w = x.copy(), W.copy()
    layer = Convolution(W, np.zeros(3), 1, 1)
    y = layer.forward(x)
    g = rng.standard_normal(y.shape)
    keep_g = g.copy()
    layer.backward(g)
    pool = Pooling(2, 2)
    pool.backward(pool.forward(y))
    for a, b in ((x, keep_x), (W, keep_w), (g, keep_g)):
        np.testing.assert_array_equal(a, b)
