"""A network drawn as the chain of its layers with the numbers of one image's real forward and
backward pass (a trace of :func:`bpnet.apps.graph.trace.network_trace`).

Left to right: the input X, each layer, then Softmax-with-Loss with the label t coming in from
below. Between two nodes the arrow carries the shape of what flows forward (above it) and the
L2 norm of the gradient flowing back (below it, red). Above each node, what it computed for the
image: the input as an image, a flat output as a strip of cells (wrapped in rows of at most
STRIP values), a stack of maps as a mosaic of them, the class probabilities as bars. Below each
node, the gradient of the loss with respect to that output (a strip or maps, red positive, blue
negative), and under the node itself the size of each parameter's gradient. Under X, the
gradient on the input as an image: which pixels would change the loss for the target class.
"""

from __future__ import annotations

import math

import numpy as np

from bpnet.apps.graph.draw import BACKWARD, FORWARD, NAME, NODE, SMALL, canvas, number, save

COL, GAP = 1.3, 0.55  # inches: a node's column, the space between two columns
PANEL = 1.2  # inches: height of a forward or backward picture
BOX = (0.95, 0.42)  # inches: a node's box
STRIP = 50  # values per row of a strip
LEFT, RIGHT = 0.45, 1.0  # inches: margin for the rows' names, room for the loss's arrow
TINY = SMALL - 1
# from the top, inches: the title's band, the forward pictures, the boxes' row (centre), the
# parameters' lines, the backward pictures, the bottom margin
TITLE, FWD_TOP, BOX_Y = 0.75, 0.8, 2.75
BWD_TOP, HEIGHT = 3.85, 5.45
TITLES = {
    "affine": "Affine",
    "conv": "Convolution",
    "pool": "Pooling",
    "relu": "ReLU",
    "sigmoid": "Sigmoid",
    "batchnorm": "BatchNorm",
    "dropout": "Dropout",
    "softmax-loss": "Softmax\nwith Loss",
}


def shape_text(shape):
    return "×".join(map(str, shape)) if shape else "1"


def draw_net(trace, path, about):
    """Draw ``trace`` (a network_trace dict) into ``path`` (.png or .svg) and write the trace
    with ``about`` (weights, network, image: what was traced) as JSON beside it."""
    nodes = trace["nodes"]
    n = 1 + len(nodes)  # X, then every node (the loss last)
    width = max(8.6, LEFT + n * COL + (n - 1) * GAP + RIGHT)  # 8.6: room for the titles
    fig, ax = canvas(width, HEIGHT)
    x_of = [LEFT + i * (COL + GAP) + COL / 2 for i in range(n)]  # column centres

    def at(top, height, i, w=COL):
        """Axes of ``w`` × ``height`` inches in column i, its top ``top`` inches down."""
        left, bottom = x_of[i] - w / 2, HEIGHT - top - height
        sub = fig.add_axes((left / width, bottom / HEIGHT, w / width, height / HEIGHT))
        sub.set_xticks([]), sub.set_yticks([])
        return sub

    y_box = HEIGHT - BOX_Y
    target, predicted = trace["target"], trace["predicted"]
    # X: the input and the gradient on it
    image = np.array(trace["input"]["image"], dtype=float)
    grad = np.array(trace["input"]["grad"], dtype=float)
    _picture(at(FWD_TOP, PANEL, 0, PANEL), image, "gray_r", 0.0, max(1.0, np.nanmax(image)))
    _picture(at(BWD_TOP, PANEL, 0, PANEL), grad, "RdBu_r", *_symmetric(grad))
    _caption(ax, x_of[0], FWD_TOP + PANEL, [f"input {shape_text(trace['input']['shape'])}"])
    _caption(
        ax,
        x_of[0],
        BWD_TOP + PANEL,
        [f"dL/dX for class {target}", f"norm {number(trace['input']['grad_norm'])}"],
        BACKWARD,
    )
    _node_box(ax, x_of[0], y_box, "X", "")
    for i, node in enumerate(nodes, start=1):
        kind = node["kind"]
        title = TITLES.get(kind, node["name"])
        _node_box(ax, x_of[i], y_box, title, node["name"] if kind != "softmax-loss" else "")
        prev = nodes[i - 2]["backward"]["norm"] if i > 1 else trace["input"]["grad_norm"]
        _edge(
            ax,
            x_of[i - 1] + BOX[0] / 2,
            x_of[i] - BOX[0] / 2,
            y_box,
            shape_text(node["in_shape"]),
            number(prev),
        )
        if kind == "softmax-loss":
            _loss(ax, at, i, x_of[i], y_box, trace)
            continue
        _params(ax, x_of[i], y_box - BOX[1] / 2 - 0.05, node["params"])
        _output(at, ax, i, x_of[i], node)
    ax.text(0.15, HEIGHT - 0.12, about["title"], fontsize=SMALL + 2, va="top")
    ax.text(
        0.15,
        HEIGHT - 0.42,
        f"predicted {predicted} (p = {number(trace['probabilities'][predicted])}),  "
        f"target t = {target},  loss {number(trace['loss'])};   arrows: the shape going forward "
        f"above, the norm of the gradient coming back below (red)",
        fontsize=SMALL + 1,
        va="top",
    )
    _rows(ax, y_box)
    return save(fig, path, {**about, **trace})


def _rows(ax, y_box):
    """The names of the two rows of pictures and what the arrows' numbers are."""
    for top, text, colour in (
        (FWD_TOP, "forward: each node's output", FORWARD),
        (BWD_TOP, "backward: dL/d(that output)", BACKWARD),
    ):
        ax.text(
            0.2,
            HEIGHT - top - PANEL / 2,
            text,
            rotation=90,
            ha="center",
            va="center",
            fontsize=TINY,
            color=colour,
        )


def _node_box(ax, x, y, title, name):
    from matplotlib.patches import FancyBboxPatch

    w, h = BOX
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0,rounding_size=0.08",
            facecolor=NODE,
            edgecolor=FORWARD,
            lw=1.1,
        )
    )
    lines = title.count("\n") + 1
    ax.text(
        x,
        y + (0.06 if name else 0),
        title,
        ha="center",
        va="center",
        weight="bold",
        fontsize=SMALL if lines == 1 else TINY,
        linespacing=1.0,
    )
    if name:
        ax.text(x, y - 0.1, name, ha="center", va="center", fontsize=TINY - 1, color=NAME)


def _edge(ax, x0, x1, y, above, below):
    from bpnet.apps.graph.draw import arrow

    arrow(ax, [(x0, y), (x1, y)])
    mid = (x0 + x1) / 2
    ax.text(mid, y + 0.05, above, ha="center", va="bottom", fontsize=TINY)
    span = min(0.3 * (x1 - x0), 0.4)
    arrow(ax, [(mid + span, y - 0.07), (mid - span, y - 0.07)], BACKWARD, 0.9)
    ax.text(mid, y - 0.12, below, ha="center", va="top", fontsize=TINY, color=BACKWARD)


def _params(ax, x, y, params):
    """Under a node: each parameter's gradient, its shape, L2 norm and largest |value|."""
    lines = []
    for p in params:
        lines.append(f"d{p['key']} {shape_text(p['shape'])}")
        lines.append(f"norm {number(p['grad_norm'])}  max {number(p['grad_max_abs'])}")
    if lines:
        ax.text(
            x,
            y,
            "\n".join(lines),
            ha="center",
            va="top",
            fontsize=TINY,
            color=BACKWARD,
            linespacing=1.15,
        )


def _output(at, ax, i, x, node):
    """A node's output (above) and the gradient arriving at it (below), with captions."""
    fwd, bwd = node["forward"], node["backward"]
    shape = shape_text(node["out_shape"])
    if "maps" in fwd:
        maps, back = np.array(fwd["maps"], float), np.array(bwd["maps"], float)
        shown = f"{len(maps)} of {fwd['channels']} maps" if len(maps) < fwd["channels"] else ""
        lo, hi = np.nanmin(maps), np.nanmax(maps)
        _picture(at(FWD_TOP, PANEL, i, PANEL), _mosaic(maps), "viridis", lo, hi, "equal")
        back = _mosaic(back)
        _picture(at(BWD_TOP, PANEL, i, PANEL), back, "RdBu_r", *_symmetric(back), "equal")
    else:
        values, back = np.array(fwd["values"], float), np.array(bwd["values"], float)
        shown = f"first {len(values)} of {fwd['size']}" if len(values) < fwd["size"] else ""
        lo, hi = np.nanmin(values), np.nanmax(values)
        strip, h = _strip(values)
        _picture(at(FWD_TOP + (PANEL - h) / 2, h, i), strip, "viridis", lo, hi)
        _picture(at(BWD_TOP + (PANEL - h) / 2, h, i), _strip(back)[0], "RdBu_r", *_symmetric(back))
    lines = [shape] + ([shown] if shown else []) + [f"{number(lo)} to {number(hi)}"]
    _caption(ax, x, FWD_TOP + PANEL, lines)
    _caption(ax, x, BWD_TOP + PANEL, [f"norm {number(bwd['norm'])}"], BACKWARD)


def _loss(ax, at, i, x, y_box, trace):
    """The loss node's column: class probabilities as bars above, the label t coming in from
    below, the loss leaving to the right."""
    from bpnet.apps.graph.draw import arrow

    p = np.array(trace["probabilities"], dtype=float)
    bars = at(FWD_TOP, PANEL - 0.15, i)
    colours = ["#888888"] * len(p)
    colours[trace["predicted"]] = "#2c7fb8"
    bars.bar(range(len(p)), p, color=colours, width=0.8)
    bars.bar([trace["target"]], [1.0], fill=False, edgecolor=BACKWARD, lw=0.8, width=0.9)
    bars.set_ylim(0, 1.0)
    bars.set_xlim(-0.6, len(p) - 0.4)
    if len(p) <= 10:
        bars.set_xticks(range(len(p)))
        bars.tick_params(axis="x", labelsize=TINY - 1, length=0, pad=1)
    _caption(ax, x, FWD_TOP + PANEL, ["probabilities", "(red frame: t)"])
    x1 = x + BOX[0] / 2
    arrow(ax, [(x1, y_box), (x1 + 0.75, y_box)])
    ax.text(x1 + 0.8, y_box, "L", va="center", fontsize=SMALL)
    ax.text(x1 + 0.37, y_box + 0.05, number(trace["loss"]), ha="center", va="bottom", fontsize=TINY)
    ax.text(x1 + 0.37, y_box - 0.07, "1", ha="center", va="top", fontsize=TINY, color=BACKWARD)
    y_t = y_box - BOX[1] / 2 - 0.55
    arrow(ax, [(x, y_t), (x, y_box - BOX[1] / 2)])
    ax.text(x, y_t - 0.04, f"t = {trace['target']}", ha="center", va="top", fontsize=SMALL)


def _caption(ax, x, top, lines, colour=FORWARD):
    ax.text(
        x,
        HEIGHT - top - 0.04,
        "\n".join(lines),
        ha="center",
        va="top",
        fontsize=TINY,
        color=colour,
        linespacing=1.1,
    )


def _picture(sub, a, cmap, lo, hi, aspect="auto"):
    from matplotlib import colormaps

    cm = colormaps[cmap].with_extremes(bad="white")
    hi = hi if hi > lo else lo + 1e-12
    sub.imshow(a, cmap=cm, vmin=lo, vmax=hi, interpolation="nearest", aspect=aspect)
    for side in sub.spines.values():
        side.set_linewidth(0.5)


def _symmetric(a):
    """(−m, m), m the largest |value| of ``a`` (a tiny positive one when all are 0)."""
    m = float(np.nanmax(np.abs(a))) if a.size else 0.0
    return -max(m, 1e-12), max(m, 1e-12)


def _strip(values):
    """A flat output as cells in rows of at most STRIP (the last row padded with NaN: white),
    and the height in inches to draw it at (square-ish cells, at least 0.2 in)."""
    cols = min(STRIP, max(len(values), 1))
    rows = math.ceil(len(values) / cols)
    cells = np.full(rows * cols, np.nan)
    cells[: len(values)] = values
    return cells.reshape(rows, cols), min(PANEL, max(0.2, rows * COL / cols))


def _mosaic(maps):
    """Maps (K, H, W) side by side in a near-square grid, one NaN (white) pixel apart."""
    k, h, w = maps.shape
    cols = math.ceil(math.sqrt(k))
    rows = math.ceil(k / cols)
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    for j in range(k):
        r, c = divmod(j, cols)
        out[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = maps[j]
    return out
