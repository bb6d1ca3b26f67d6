"""Drawings of computational graphs with their own numbers: on every edge the value going
forward above it (black) and the derivative coming back below it (red, under a red arrow that
points back), laid out by hand as the lesson draws them.

matplotlib (the ``plot`` extra) draws them, on an Agg canvas, into a PNG or an SVG chosen by the
output's suffix; an SVG keeps its text as text (``svg.fonttype`` 'none'), so every number drawn
can be read back from its ``<text>`` elements. Next to the picture, ``save`` writes the numbers
it was drawn from as JSON (``out.json`` beside ``out.png``): both are written atomically.
Graphviz is not used: these are small fixed layouts, and the network graph embeds images and bar
charts, which it cannot draw.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bpnet.apps.plots import DPI, _figure
from bpnet.base.files import atomic_write, atomic_write_text, replaceable
from bpnet.base.text import printable
from bpnet.errors import InputError

FORWARD, BACKWARD, NODE, NAME = "black", "#c0392b", "#f3f0e6", "#555555"  # colours
FONT, SMALL = 10, 8  # points
MONO = "DejaVu Sans Mono"
CHAR = 0.6 * FONT / 72  # inches per character of MONO at FONT
LINE = 1.25 * FONT / 72  # inches per line of text at FONT
DIGITS, SCALAR_DIGITS = 4, 6  # significant digits of an array's numbers, of a single number
FORMATS = (".png", ".svg")
LEGEND = (
    (FORWARD, "above an edge: the value going forward"),
    (BACKWARD, "below, under the arrow back: the derivative of the output with respect to it"),
)


def number(v, digits=DIGITS):
    """``v`` to ``digits`` significant digits, as printed on a drawing (never "-0")."""
    return f"{float(v) + 0.0:.{digits}g}"


def value_lines(a, digits=DIGITS):
    """An array as lines of numbers: a scalar one, a vector one row, a matrix one row per line,
    columns aligned (numbers right-justified, two spaces apart)."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0:
        return [number(a, SCALAR_DIGITS if digits == DIGITS else digits)]
    rows = [[number(v, digits) for v in row] for row in np.atleast_2d(a)]
    widths = [max(len(row[j]) for row in rows) for j in range(len(rows[0]))]
    return ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows]


def check_output(path):
    """``path`` as a Path when it names a .png or .svg file in an existing folder, where it and
    its ``sidecar`` may be written (each missing or a regular file); otherwise an InputError
    (exit status 2) saying what was expected."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise InputError(f"{printable(path)}: expected a .png or .svg file name")
    if not path.parent.is_dir():
        raise InputError(f"{printable(path)}: folder {printable(path.parent)} does not exist")
    replaceable(path)  # a folder, FIFO or device there is refused before anything is drawn
    replaceable(sidecar(path))
    return path


def sidecar(path):
    """Where the numbers of the picture ``path`` are written: the same name with .json."""
    return Path(path).with_suffix(".json")


def save(fig, path, numbers):
    """Write ``fig`` to ``path`` (PNG or SVG by its suffix; an SVG with its text as text and no
    date, so the same numbers give the same file) and ``numbers`` as JSON beside it
    (``sidecar``), each atomically; returns (picture, sidecar)."""
    import matplotlib

    path = check_output(path)
    fmt = path.suffix.lower()[1:]
    rc = {"svg.fonttype": "none", "svg.hashsalt": "bpnet"}
    with matplotlib.rc_context(rc), atomic_write(path) as fh:
        fig.savefig(fh, format=fmt, dpi=DPI, metadata={"Date": None} if fmt == "svg" else None)
    atomic_write_text(sidecar(path), json.dumps(numbers, indent=1, allow_nan=False) + "\n")
    return path, sidecar(path)


def canvas(width, height):
    """A figure ``width`` × ``height`` inches and axes over all of it whose units are inches
    (origin bottom left), without ticks or frame."""
    fig = _figure((width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_axis_off()
    return fig, ax


def arrow(ax, points, colour=FORWARD, width=1.3):
    """A line through ``points`` (inches) with an arrow head at the last."""
    xs, ys = zip(*points)
    if len(points) > 2:
        ax.plot(xs[:-1], ys[:-1], color=colour, lw=width, solid_capstyle="round")
    ax.annotate(
        "",
        xy=points[-1],
        xytext=points[-2],
        arrowprops={"arrowstyle": "-|>", "color": colour, "lw": width, "shrinkA": 0, "shrinkB": 0},
    )


def values(ax, x0, x1, y, forward, backward):
    """The numbers of the edge segment from (x0, y) to (x1, y): ``forward`` lines above it,
    a red arrow pointing back under it and ``backward`` lines (if any) under that."""
    mid = (x0 + x1) / 2
    text = {"ha": "center", "family": MONO, "fontsize": FONT, "linespacing": 1.25}
    ax.text(mid, y + 0.06, "\n".join(forward), va="bottom", color=FORWARD, **text)
    if backward:
        span = min(0.35 * (x1 - x0), 0.5)
        arrow(ax, [(mid + span, y - 0.09), (mid - span, y - 0.09)], BACKWARD, 1.0)
        ax.text(mid, y - 0.15, "\n".join(backward), va="top", color=BACKWARD, **text)


def legend(ax, x, y, subject="the output"):
    """Two lines saying what the black and the red numbers are, from (x, y) downwards."""
    for i, (colour, words) in enumerate(LEGEND):
        ax.text(
            x,
            y - i * 1.3 * SMALL / 72,
            words.replace("the output", subject),
            color=colour,
            fontsize=SMALL,
            va="top",
        )


# --- the apple, orange and tax graph ---------------------------------------------------------

APPLE_SIZE = (10.2, 4.8)  # inches
RADIUS = 0.27
APPLE_NODES = {  # centres, inches
    "mul_apple": (4.1, 3.1),
    "mul_orange": (4.1, 1.15),
    "add_fruit": (6.4, 2.1),
    "mul_tax": (8.4, 2.1),
}
# Each edge: the start of its labelled horizontal run (an input's name is written before it)
# and its end, from where it goes on into its node; None: on the circle of the node it leaves
# or enters.
APPLE_RUNS = {
    "apple": ((1.3, 3.7), (3.2, 3.7)),
    "apple_num": ((1.3, 2.55), (3.2, 2.55)),
    "orange": ((1.3, 1.75), (3.2, 1.75)),
    "orange_num": ((1.3, 0.6), (3.2, 0.6)),
    "apple_price": (None, (5.5, 3.1)),
    "orange_price": (None, (5.5, 1.15)),
    "all_price": (None, None),
    "tax": ((7.0, 0.75), (7.7, 0.75)),
    "price": (None, (9.7, 2.1)),
}


def _toward(centre, start, radius=RADIUS):
    """The point of the circle at ``centre`` on the line to it from ``start``."""
    (cx, cy), (sx, sy) = centre, start
    d = np.hypot(cx - sx, cy - sy)
    return (cx - (cx - sx) * radius / d, cy - (cy - sy) * radius / d)


def draw_apples(graph, path):
    """The apple graph of ``small.apple_graph``: × and + nodes placed as the lesson draws them,
    each edge with its value above and d price / d edge below; writes ``path`` and its JSON."""
    fig, ax = canvas(*APPLE_SIZE)
    edges = {e["name"]: e for e in graph["edges"]}
    for node in graph["nodes"]:
        centre = APPLE_NODES[node["name"]]
        ax.add_patch(_circle(centre))
        ax.text(*centre, node["op"], ha="center", va="center_baseline", fontsize=16)
        ax.text(
            centre[0],
            centre[1] + RADIUS + 0.05,
            node["layer"],
            ha="center",
            va="bottom",
            fontsize=SMALL - 1,
            color=NAME,
        )
    for name, (start, end) in APPLE_RUNS.items():
        e = edges[name]
        src = APPLE_NODES.get(e["from"])
        dst = APPLE_NODES.get(e["to"])
        if start is None:  # out of a node: the run starts on its circle
            start = (src[0] + RADIUS, src[1])
        if end is None:
            end = (dst[0] - RADIUS, dst[1])
        far = dst is not None and np.hypot(dst[0] - end[0], dst[1] - end[1]) > RADIUS + 1e-6
        points = [start, end, _toward(dst, end)] if far else [start, end]
        arrow(ax, points)
        fwd, bwd = value_lines(e["forward"]), value_lines(e["backward"])
        values(ax, start[0], end[0], start[1], fwd, bwd)
        if e["from"] is None:
            ax.text(start[0] - 0.08, start[1], name, ha="right", va="center", fontsize=FONT)
        if e["to"] is None:
            ax.text(end[0] + 0.08, end[1], name, ha="left", va="center", fontsize=FONT)
    ax.text(0.2, APPLE_SIZE[1] - 0.2, _apple_title(graph), fontsize=FONT + 1, va="top")
    legend(ax, 0.2, APPLE_SIZE[1] - 0.5, "price")
    return save(fig, path, graph)


def _circle(centre, radius=RADIUS):
    from matplotlib.patches import Circle

    return Circle(centre, radius, facecolor=NODE, edgecolor=FORWARD, lw=1.3)


def _apple_title(graph):
    price = number(next(e for e in graph["edges"] if e["name"] == "price")["forward"], 6)
    return (
        "price = (apple × apple_num + orange × orange_num) × tax   "
        f"(MulLayer and AddLayer, forward then backward: price {price})"
    )


# --- one-node graphs --------------------------------------------------------------------------

NAME_WIDTH = 1.1  # inches before an input's run, for its name and shape
GAP = 0.5  # inches between two inputs' blocks of numbers


def _label(e):
    shape = "" if not e["shape"] else f" ({', '.join(map(str, e['shape']))})"
    return e["name"] + shape


def _block(e):
    if e["name"] == "t":  # class labels: integers, no derivative
        return [" ".join(str(int(t)) for t in np.ravel(e["forward"]))], []
    bwd = [] if e["backward"] is None else value_lines(e["backward"])
    return value_lines(e["forward"]), bwd


def draw_node(graph, path):
    """A one-node graph of ``small`` (relu, sigmoid, affine, softmax-loss): its inputs come in
    from the left, stacked, its output leaves on the right; writes ``path`` and its JSON."""
    node = graph["nodes"][0]
    inputs = [e for e in graph["edges"] if e["from"] is None]
    (output,) = [e for e in graph["edges"] if e["to"] is None]
    blocks = {e["name"]: _block(e) for e in graph["edges"]}
    run = max(1.4, 0.5 + CHAR * max(len(s) for b in blocks.values() for s in b[0] + b[1]))
    heights = [LINE * sum(map(len, blocks[e["name"]])) + GAP + 0.25 for e in inputs]
    rules = [node["forward_rule"], node["backward_rule"]]
    box_w = max(1.4, 0.11 * len(node["op"]) + 0.5)
    extra = node.get("y")
    under = value_lines(extra) if extra is not None else []
    body = max(sum(heights), 1.2)
    top_margin, bottom_margin = 0.95, 0.45 + LINE * len(under)
    width = NAME_WIDTH + run + box_w + run + NAME_WIDTH
    height = top_margin + body + bottom_margin
    fig, ax = canvas(width, height)
    x_box = NAME_WIDTH + run
    ys, top = [], height - top_margin
    for e, h in zip(inputs, heights):
        fwd, bwd = blocks[e["name"]]
        y = top - 0.1 - LINE * len(fwd) - 0.1
        ys.append(y)
        top -= h
    y_out = (max(ys) + min(ys)) / 2
    box_top, box_bottom = max(ys) + 0.45, min(ys) - 0.45
    if box_top - box_bottom < 1.0:
        box_top, box_bottom = y_out + 0.5, y_out - 0.5
    _box(ax, x_box, box_bottom, box_w, box_top - box_bottom)
    ax.text(
        x_box + box_w / 2,
        y_out + 0.12,
        node["op"],
        ha="center",
        va="bottom",
        fontsize=FONT + 2,
        weight="bold",
    )
    ax.text(
        x_box + box_w / 2,
        y_out - 0.02,
        node["layer"],
        ha="center",
        va="top",
        fontsize=SMALL,
        color=NAME,
        family=MONO,
    )
    for e, y in zip(inputs, ys):
        arrow(ax, [(NAME_WIDTH, y), (x_box, y)])
        values(ax, NAME_WIDTH, x_box, y, *blocks[e["name"]])
        ax.text(NAME_WIDTH - 0.08, y, _label(e), ha="right", va="center", fontsize=FONT)
    x_out = x_box + box_w
    arrow(ax, [(x_out, y_out), (x_out + run, y_out)])
    values(ax, x_out, x_out + run, y_out, *blocks[output["name"]])
    ax.text(x_out + run + 0.08, y_out, _label(output), ha="left", va="center", fontsize=FONT)
    ax.text(
        0.2,
        height - 0.15,
        f"{node['op']}:  {rules[0]};  backward {rules[1]}",
        fontsize=FONT + 1,
        va="top",
    )
    legend(ax, 0.2, height - 0.42, "L")
    if under:
        ax.text(
            x_box + box_w / 2,
            box_bottom - 0.08,
            "y = softmax(a)",
            ha="center",
            va="top",
            fontsize=SMALL,
            color=NAME,
        )
        ax.text(
            x_box + box_w / 2,
            box_bottom - 0.08 - 1.4 * SMALL / 72,
            "\n".join(under),
            ha="center",
            va="top",
            fontsize=SMALL,
            color=NAME,
            family=MONO,
        )
    ax.text(0.2, 0.15, _gradient_note(graph, output), fontsize=SMALL, color=NAME)
    return save(fig, path, graph)


def _box(ax, x, y, w, h):
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle="round,pad=0,rounding_size=0.12",
            facecolor=NODE,
            edgecolor=FORWARD,
            lw=1.3,
        )
    )


def _gradient_note(graph, output):
    if graph["graph"] == "softmax-loss":
        return "backward starts from dL/dL = 1; the labels t have no derivative"
    y = output["name"]
    return f"backward starts from d{y} = dL/d{y}, given (default: all ones, L = the sum of {y})"


def draw(graph, path):
    """Draw any graph of ``small`` into ``path`` (.png or .svg) with its JSON beside it."""
    check_output(path)
    if graph["graph"] == "apples":
        return draw_apples(graph, path)
    return draw_node(graph, path)
