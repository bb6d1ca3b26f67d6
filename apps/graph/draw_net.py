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

from bpnet.apps.graph.draw import BACKWARD, FORWARD, NAME, NODE, SMALL, arrow, canvas, number, save

COL, GAP = 1.3, 0.55  # inches: a node's column, the space between two columns
PANEL = 1.2  # inches: height of a forward or backward picture
BOX = (0.95, 0.42)  # inches: a node's box
STRIP = 50  # values per row of a strip
LEFT, RIGHT = 0.45, 1.0  # inches: margin for the rows' names, room for the loss's arrow
TINY = SMALL - 1
TITLE = 0.75  # inches: the title's band at the top
PER_BAND, BAND = 9, 4.7  # columns of one band, its height (inches); a longer chain goes on below
# from a band's top, inches: the forward pictures, the boxes' row (centre), the backward pictures
FWD_TOP, BOX_Y, BWD_TOP = 0.05, 2.0, 3.1
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


TITLE_CHAR, TITLE_LINE = 0.08, 0.18  # inches: a character and a line of the title (at most)


def picture_size(columns, title_lines=1):
    """(width, height) in inches of the drawing of a chain of ``columns`` columns (X, the
    layers, the loss): bands of at most PER_BAND columns under the title."""
    across = min(columns, PER_BAND)
    width = max(8.6, LEFT + across * COL + (across - 1) * GAP + RIGHT)  # 8.6: the titles' room
    top = TITLE + TITLE_LINE * (title_lines - 1)
    return width, top + math.ceil(columns / PER_BAND) * BAND


def title_lines(title, columns):
    """The title wrapped to the width of the drawing of ``columns`` columns."""
    import textwrap

    width = picture_size(columns)[0]
    return textwrap.wrap(title, int((width - 0.3) / TITLE_CHAR), break_on_hyphens=False)


class _Page:
    """The figure, and where column i of the chain is: its band, centre and heights."""

    def __init__(self, columns, title):
        self.title = title_lines(title, columns)
        self.width, self.height = picture_size(columns, len(self.title))
        self.top = TITLE + TITLE_LINE * (len(self.title) - 1)
        self.fig, self.ax = canvas(self.width, self.height)

    def x(self, i):
        return LEFT + (i % PER_BAND) * (COL + GAP) + COL / 2

    def y(self, i, down):
        """Height (inches from the bottom) of the point ``down`` inches below column i's band
        top."""
        return self.height - self.top - (i // PER_BAND) * BAND - down

    def axes(self, i, down, height, w=COL):
        """Axes of ``w`` × ``height`` inches in column i, its top ``down`` inches down the
        band."""
        left, bottom = self.x(i) - w / 2, self.y(i, down) - height
        fig, W, H = self.fig, self.width, self.height
        sub = fig.add_axes((left / W, bottom / H, w / W, height / H))
        sub.set_xticks([]), sub.set_yticks([])
        return sub

    def caption(self, i, down, lines, colour=FORWARD):
        _lines(self.ax, self.x(i), self.y(i, down) - 0.04, lines, colour, 1.1)


def _lines(ax, x, y, lines, colour, spacing):
    """Small lines of text centred under (x, y)."""
    ax.text(
        x,
        y,
        "\n".join(lines),
        ha="center",
        va="top",
        fontsize=TINY,
        color=colour,
        linespacing=spacing,
    )


def draw_net(trace, path, about):
    """Draw ``trace`` (a network_trace dict) into ``path`` (.png or .svg) and write the trace
    with ``about`` (weights, network, image: what was traced) as JSON beside it."""
    nodes = trace["nodes"]
    page = _Page(1 + len(nodes), about["title"])  # X, then every node (the loss last)
    ax = page.ax
    target, predicted = trace["target"], trace["predicted"]
    # X: the input and the gradient on it
    image = np.array(trace["input"]["image"], dtype=float)
    grad = np.array(trace["input"]["grad"], dtype=float)
    _picture(page.axes(0, FWD_TOP, PANEL, PANEL), image, "gray_r", 0, max(1, np.nanmax(image)))
    _picture(page.axes(0, BWD_TOP, PANEL, PANEL), grad, "RdBu_r", *_symmetric(grad))
    page.caption(0, FWD_TOP + PANEL, [f"input {shape_text(trace['input']['shape'])}"])
    norm = number(trace["input"]["grad_norm"])
    page.caption(0, BWD_TOP + PANEL, [f"dL/dX for class {target}", f"norm {norm}"], BACKWARD)
    _node_box(ax, page.x(0), page.y(0, BOX_Y), "X", "")
    for i, node in enumerate(nodes, start=1):
        kind = node["kind"]
        x, y = page.x(i), page.y(i, BOX_Y)
        title = TITLES.get(kind, node["name"])
        _node_box(ax, x, y, title, node["name"] if kind != "softmax-loss" else "")
        prev = nodes[i - 2]["backward"]["norm"] if i > 1 else trace["input"]["grad_norm"]
        labels = shape_text(node["in_shape"]), number(prev)
        if i % PER_BAND:  # from the node before, in the same band
            _edge(ax, page.x(i - 1) + BOX[0] / 2, x - BOX[0] / 2, y, *labels)
        else:  # out of the end of the band above, into the start of this one
            x0, y0 = page.x(i - 1) + BOX[0] / 2, page.y(i - 1, BOX_Y)
            _edge(ax, x0, x0 + GAP + 0.2, y0, *labels)
            arrow(ax, [(LEFT - 0.15, y), (x - BOX[0] / 2, y)])
        if kind == "softmax-loss":
            _loss(page, i, trace)
            continue
        _params(ax, x, y - BOX[1] / 2 - 0.05, node["params"])
        _output(page, i, node)
    title = "\n".join(page.title)
    ax.text(0.15, page.height - 0.12, title, fontsize=SMALL + 2, va="top", linespacing=1.3)
    ax.text(
        0.15,
        page.height - page.top + 0.33,
        f"predicted {predicted} (p = {number(trace['probabilities'][predicted])}),  "
        f"target t = {target},  loss {number(trace['loss'])};   arrows: the shape going forward "
        f"above, the norm of the gradient coming back below (red)",
        fontsize=SMALL + 1,
        va="top",
    )
    for band in range(0, 1 + len(nodes), PER_BAND):
        _rows(page, band)
    return save(page.fig, path, {**about, **trace})


def _rows(page, i):
    """The names of the two rows of pictures, at the left of column i's band."""
    for down, text, colour in (
        (FWD_TOP, "forward: each node's output", FORWARD),
        (BWD_TOP, "backward: dL/d(that output)", BACKWARD),
    ):
        page.ax.text(
            0.2,
            page.y(i, down + PANEL / 2),
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
        _lines(ax, x, y, lines, BACKWARD, 1.15)


def _output(page, i, node):
    """A node's output (above) and the gradient arriving at it (below), with captions."""
    fwd, bwd = node["forward"], node["backward"]
    shape = shape_text(node["out_shape"])
    if "maps" in fwd:
        maps, back = np.array(fwd["maps"], float), _mosaic(np.array(bwd["maps"], float))
        shown = f"{len(maps)} of {fwd['channels']} maps" if len(maps) < fwd["channels"] else ""
        lo, hi = np.nanmin(maps), np.nanmax(maps)
        _picture(page.axes(i, FWD_TOP, PANEL, PANEL), _mosaic(maps), "viridis", lo, hi, "equal")
        _picture(page.axes(i, BWD_TOP, PANEL, PANEL), back, "RdBu_r", *_symmetric(back), "equal")
    else:
        values, back = np.array(fwd["values"], float), np.array(bwd["values"], float)
        shown = f"first {len(values)} of {fwd['size']}" if len(values) < fwd["size"] else ""
        lo, hi = np.nanmin(values), np.nanmax(values)
        strip, h = _strip(values)
        _picture(page.axes(i, FWD_TOP + (PANEL - h) / 2, h), strip, "viridis", lo, hi)
        sub = page.axes(i, BWD_TOP + (PANEL - h) / 2, h)
        _picture(sub, _strip(back)[0], "RdBu_r", *_symmetric(back))
    lines = [shape] + ([shown] if shown else []) + [f"{number(lo)} to {number(hi)}"]
    page.caption(i, FWD_TOP + PANEL, lines)
    page.caption(i, BWD_TOP + PANEL, [f"norm {number(bwd['norm'])}"], BACKWARD)


def _loss(page, i, trace):
    """The loss node's column: class probabilities as bars above, the label t coming in from
    below, the loss leaving to the right."""
    ax, x, y = page.ax, page.x(i), page.y(i, BOX_Y)
    p = np.array(trace["probabilities"], dtype=float)
    bars = page.axes(i, FWD_TOP, PANEL - 0.15)
    colours = ["#888888"] * len(p)
    colours[trace["predicted"]] = "#2c7fb8"
    bars.bar(range(len(p)), p, color=colours, width=0.8)
    bars.bar([trace["target"]], [1.0], fill=False, edgecolor=BACKWARD, lw=0.8, width=0.9)
    bars.set_ylim(0, 1.0)
    bars.set_xlim(-0.6, len(p) - 0.4)
    if len(p) <= 10:
        bars.set_xticks(range(len(p)))
        bars.tick_params(axis="x", labelsize=TINY - 1, length=0, pad=1)
    page.caption(i, FWD_TOP + PANEL, ["probabilities", "(red frame: t)"])
    x1 = x + BOX[0] / 2
    arrow(ax, [(x1, y), (x1 + 0.75, y)])
    ax.text(x1 + 0.8, y, "L", va="center", fontsize=SMALL)
    ax.text(x1 + 0.37, y + 0.05, number(trace["loss"]), ha="center", va="bottom", fontsize=TINY)
    ax.text(x1 + 0.37, y - 0.07, "1", ha="center", va="top", fontsize=TINY, color=BACKWARD)
    y_t = y - BOX[1] / 2 - 0.55
    arrow(ax, [(x, y_t), (x, y - BOX[1] / 2)])
    ax.text(x, y_t - 0.04, f"t = {trace['target']}", ha="center", va="top", fontsize=SMALL)


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
