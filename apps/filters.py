"""What a convolutional network's first convolution learned and what it sees, as the book's
chapter 7 shows them: its filters before and after training (ch07/visualize_filter.py) and the
maps one image makes through it and the pooling after it (ch07/apply_filter.py).

The initial filters are not stored anywhere: they are drawn again exactly as the trainer drew
them. A weights file written by ``bpnet train`` keeps its run's resolved config in
``meta.config``, and the trainer draws a network's initial weights from nothing but that config's
model, ``train.dtype`` and ``train.seed`` (``build_network`` with the seed's own stream for
initial weights, bpnet.training.batches.INIT_STREAM); so the same call gives the same bits, for
``weights.npz`` and ``best.npz`` alike, and for a run resumed or extended (its seed stays).

Each drawing function returns the arrays it drew, so what a picture shows can be checked
against the weights file and a forward pass of one's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bpnet.apps.plots import DPI, _figure, save_png
from bpnet.base.text import printable
from bpnet.errors import InputError

TILE, GAP = 0.5, 0.06  # inches per filter or map (50 pixels at plots.DPI), and between them
TITLE, MARGIN = 0.35, 0.2  # inches: a panel's title line, the picture's margins
INPUT = 2.4  # inches: the image of a feature-maps picture
FILTER_COLUMNS = 8  # the book's filter_show draws 8 filters a row
MAP_COLUMNS = 10
MAX_TILES = 256  # filters or maps drawn per panel; a larger layer is drawn in part, and said so


@dataclass
class Filters:
    """What ``draw_filters`` drew: the first convolution's filters after training and, when
    they could be rebuilt, before, each (FN·C, FH, FW) (each filter's channels in turn), as the
    weights file and the run's initial state hold them; ``note``: why ``before`` is None."""

    path: Path
    layer: str  # "Conv1"
    key: str  # "W1"
    after: np.ndarray
    before: np.ndarray | None
    note: str | None = None
    boxes: dict | None = None  # {"before"/"after": [(left, top, right, bottom) pixels per tile]}


@dataclass
class FeatureMaps:
    """What ``draw_feature_maps`` drew: ``image`` (H, W) as the network took it (scaled as its
    training data were), and {layer name: maps (C, OH, OW)} of the first convolution and of the
    first pooling after it (with what lies between, e.g. a ReLU), in the network's order."""

    path: Path
    image: np.ndarray
    maps: dict
    boxes: dict | None = None  # {"input"/layer: [(left, top, right, bottom) pixels per tile]}


def first_convolution(net, name):
    """(layer name, weight key) of ``net``'s first convolution: ("Conv1", "W1") for the book's
    SimpleConvNet. InputError when the network has none (``name`` names its weights)."""
    specs = getattr(net, "layer_specs", None) or []
    kinds = [kind for kind, _ in specs]
    if "conv" not in kinds:
        raise InputError(
            f"{name}: the network has no convolution ({net.describe()}); filters and feature "
            f"maps are drawn for a network whose model.layers holds a conv layer"
        )
    weighted = [k for k in kinds[: kinds.index("conv") + 1] if k in ("conv", "affine")]
    layer = next(n for n in net.layers if n.startswith("Conv"))
    return layer, f"W{len(weighted)}"


def initial_network(meta, name):
    """The network of a weights file's run as the trainer built it before its first step,
    from the config in its ``meta.config``; None when the file keeps no config (an older
    file, or one not written by bpnet train). A config that does not check is a ConfigError."""
    from bpnet.training.batches import INIT_STREAM, seeded_rng
    from bpnet.training.config import build_network
    from bpnet.training.sources import Layers

    doc = meta.get("config")
    if not doc:
        return None
    cfg = Layers().apply(f"{name}: meta.config", doc).check_rules().cfg
    return build_network(cfg, rng=seeded_rng(cfg["train"]["seed"], INIT_STREAM))


def _tiles(w):
    """Filters (FN, C, FH, FW) as (FN·C, FH, FW) tiles."""
    w = np.asarray(w)
    return w.reshape(-1, *w.shape[-2:])


def filter_arrays(weights):
    """A :class:`Filters` (without a path) of the first convolution of the network in
    ``weights``: after training from the file, before from its run's config."""
    from bpnet.training.weights import network_from_weights

    name = printable(weights)
    net, meta = network_from_weights(weights)
    layer, key = first_convolution(net, name)
    after = _tiles(net.params[key]).copy()
    start = initial_network(meta, name)
    if start is None:
        note = f"{name} keeps no meta.config to rebuild the initial filters from"
        return Filters(None, layer, key, after, None, note)
    shapes = [{k: v.shape for k, v in n.params.items()} for n in (start, net)]
    if shapes[0] != shapes[1] or start.describe() != net.describe():
        raise InputError(
            f"{name}: meta.config describes another network ({start.describe()}) than the "
            f"file holds ({net.describe()}); expected the config it was trained with"
        )
    return Filters(None, layer, key, after, _tiles(start.params[key]).copy())


def _panel(tiles, columns, title, vmin=None, vmax=None):
    """A panel of ``tiles`` (N, H, W), ``columns`` a row under ``title``: (width, height) in
    inches and the function that draws it on a figure at (left, top) inches, returning where
    each tile went, as (left, top, right, bottom) pixels from the picture's top left."""
    shown = tiles[:MAX_TILES]
    if len(tiles) > MAX_TILES:
        title += f" (the first {MAX_TILES} of {len(tiles)})"
    cols = min(columns, len(shown))
    rows = math.ceil(len(shown) / cols)
    step = TILE + GAP
    size = (max(cols * step, 0.09 * len(title)), rows * step + TITLE)

    def draw(fig, left, top):
        fig.text(*_at(fig, left, top + 0.08), title, fontsize=10, va="top")
        return [
            _tile(
                fig, left + (i % cols) * step, top + TITLE + (i // cols) * step, TILE, t, vmin, vmax
            )
            for i, t in enumerate(shown)
        ]

    return size, draw


def _at(fig, left, top):
    """Figure coordinates of a point ``left``, ``top`` inches from the top left."""
    fw, fh = fig.get_size_inches()
    return left / fw, 1 - top / fh


def _tile(fig, left, top, side, image, vmin=None, vmax=None):
    """``image`` drawn in a square of ``side`` inches at (left, top) inches, grey, dark for
    high values (the book's gray_r), nearest pixels; returns its box in pixels."""
    fw, fh = fig.get_size_inches()
    ax = fig.add_axes((*_at(fig, left, top + side), side / fw, side / fh))
    ax.set_axis_off()
    ax.imshow(image, cmap="gray_r", vmin=vmin, vmax=vmax, interpolation="nearest")
    return tuple(round(v * DPI) for v in (left, top, left + side, top + side))


def draw_filters(weights, out_path):
    """Draw the first convolution's filters of the network in ``weights`` (a weights file)
    before training, when they can be rebuilt (see the module), and after: FILTER_COLUMNS a
    row, each filter on its own grey scale, dark for large weights, as the book's filter_show.
    Returns the :class:`Filters` drawn, its ``path`` the PNG written."""
    f = filter_arrays(weights)
    shape = "x".join(map(str, f.after.shape[1:]))
    what = f"{f.layer}: {len(f.after)} filters {shape}"
    panels = [_panel(f.after, FILTER_COLUMNS, f"after training ({what})")]
    if f.before is not None:
        first = f"before training ({f.key} as the run drew it)"
        panels.insert(0, _panel(f.before, FILTER_COLUMNS, first))
    width = sum(w for (w, _), _ in panels) + MARGIN * (len(panels) + 1)
    height = max(h for (_, h), _ in panels) + 2 * MARGIN
    fig = _figure((width, height))
    left, f.boxes = MARGIN, {}
    for name, ((w, _), draw) in zip(("before", "after")[2 - len(panels) :], panels):
        f.boxes[name] = draw(fig, left, MARGIN)
        left += w + MARGIN
    f.path = save_png(fig, out_path)
    return f


def feature_maps(net, image, scale, name="the network"):
    """A :class:`FeatureMaps` (without a path) of ``image`` (H, W) pixels 0..255 through
    ``net`` in inference mode: the output of its first convolution (bias included) and, when a
    pooling follows it before any other layer with weights, that pooling's output (after what
    lies between, e.g. a ReLU)."""
    from bpnet.nn.evaluate import to_input

    layer, _ = first_convolution(net, name)
    x = to_input(np.asarray(image)[None], scale, net.dtype).reshape(1, *net.input_shape)
    image = x[0].reshape(np.shape(image)).copy()
    maps, started = {}, False
    for n, lyr in net.layers.items():
        if started and n.startswith(("Affine", "Conv")):
            break
        x = lyr.forward(x, False)
        started = started or n == layer
        if n == layer or (started and n.startswith("Pool")):
            maps[n] = np.array(x[0])
            if n.startswith("Pool"):
                break
    return FeatureMaps(None, image, maps)


def draw_feature_maps(net, image, scale, out_path, title, name="the network"):
    """Draw ``image`` as the network took it, under ``title`` (up to two lines), and the maps
    of :func:`feature_maps`, MAP_COLUMNS a row, each layer's maps on one grey scale, dark for
    high values (the book's apply_filter.py draws them in gray_r). Returns the
    :class:`FeatureMaps` drawn, its ``path`` the PNG written."""
    fm = feature_maps(net, image, scale, name)
    panels = []
    for layer, maps in fm.maps.items():
        what = "the convolution's output" if layer.startswith("Conv") else "max pooling's output"
        side = "x".join(map(str, maps.shape[1:]))
        label = f"{layer}: {len(maps)} maps {side}, {what}"
        lo, hi = float(maps.min()), float(maps.max())
        panels.append(_panel(maps, MAP_COLUMNS, label, vmin=lo, vmax=hi))
    width = max(w for (w, _), _ in panels)
    height = sum(h for (_, h), _ in panels) + MARGIN * (len(panels) - 1)
    height = max(height, INPUT + 2 * TITLE)
    fig = _figure((INPUT + width + 3 * MARGIN, height + 2 * MARGIN))
    fig.text(*_at(fig, MARGIN, MARGIN + 0.08), title, fontsize=10, va="top")
    fm.boxes = {"input": [_tile(fig, MARGIN, MARGIN + 2 * TITLE, INPUT, fm.image)]}
    top = MARGIN
    for layer, ((_, h), draw) in zip(fm.maps, panels):
        fm.boxes[layer] = draw(fig, INPUT + 2 * MARGIN, top)
        top += h + MARGIN
    fm.path = save_png(fig, out_path)
    return fm
