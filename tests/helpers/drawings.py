"""Digits as people draw them: real MNIST digits reduced to their centre lines and drawn again
with a round pen of any width on a canvas of any size (Pillow); the 24 test digits and the 10
pen/canvas combinations that tests/apps/test_drawings.py and benchmarks/drawn_digits.py score."""

from __future__ import annotations

import numpy as np

DIGITS = slice(1000, 1024)  # 24 MNIST test digits, every class among them

# (canvas pixels, pen pixels): the digit's 20-pixel box fills 70% of the canvas, so a pen of
# about canvas/12 draws MNIST's median stroke (2.5 pixels); thin pens draw a tenth of that
PENS = {
    "thin": [(600, 4), (1200, 6), (300, 3), (120, 1)],
    "medium": [(600, 12), (300, 8), (120, 3)],
    "thick": [(600, 40), (300, 20), (120, 8)],
}
COMBINATIONS = [(kind, canvas, pen) for kind, v in PENS.items() for canvas, pen in v]


def skeleton(mask):
    """Zhang–Suen thinning of a boolean image (H, W): one-pixel-wide centre lines."""
    mask = mask.copy()
    changed = True
    while changed:
        changed = False
        for step in (0, 1):
            p = np.pad(mask, 1)
            n = [
                p[:-2, 1:-1],
                p[:-2, 2:],
                p[1:-1, 2:],
                p[2:, 2:],  # P2 … P9, clockwise from
                p[2:, 1:-1],
                p[2:, :-2],
                p[1:-1, :-2],
                p[:-2, :-2],
            ]  # the pixel above
            neighbours = sum(v.astype(int) for v in n)
            rises = sum((~a & b).astype(int) for a, b in zip(n, n[1:] + n[:1]))
            p2, p4, p6, p8 = n[0], n[2], n[4], n[6]
            keep = (p2 & p4 & p6) | (p4 & p6 & p8) if step == 0 else (p2 & p4 & p8) | (p2 & p6 & p8)
            remove = mask & (neighbours >= 2) & (neighbours <= 6) & (rises == 1) & ~keep
            if remove.any():
                mask &= ~remove
                changed = True
    return mask


def redraw(digit, canvas, pen, dark_on_light=True, fill=0.7, up=4):
    """An MNIST digit (28, 28) uint8 drawn again with a round pen ``pen`` pixels wide on a
    ``canvas`` × ``canvas`` picture (uint8), its 20-pixel box scaled to ``fill`` of the canvas:
    the digit is enlarged ``up`` times, thresholded and thinned to its centre lines, which are
    drawn as line segments between neighbouring pixels with round joints."""
    from PIL import Image, ImageDraw

    big = Image.fromarray(digit).resize((28 * up, 28 * up), Image.BILINEAR)
    ys, xs = np.nonzero(skeleton(np.asarray(big) > 127))
    f = canvas * fill / (20 * up)  # canvas pixels per enlarged pixel
    off = canvas / 2 - 14 * up * f
    im = Image.new("L", (canvas, canvas), 255 if dark_on_light else 0)
    draw, ink, r = ImageDraw.Draw(im), 0 if dark_on_light else 255, pen / 2
    points = set(zip(ys.tolist(), xs.tolist()))
    for y, x in points:
        cx, cy = off + (x + 0.5) * f, off + (y + 0.5) * f
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=ink)
        for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
            if (y + dy, x + dx) in points:
                draw.line(
                    [cx, cy, off + (x + dx + 0.5) * f, off + (y + dy + 0.5) * f],
                    fill=ink,
                    width=max(1, round(pen)),
                )
    return np.asarray(im)


def draw_files(digits, folder, kind, canvas, pen):
    """``digits`` (N, 28, 28) redrawn with a ``pen``-pixel pen on a ``canvas``-pixel canvas as
    PNG files in ``folder`` (every other one dark on light, the rest light on dark)."""
    from PIL import Image

    files = []
    for i, d in enumerate(digits):
        files.append(folder / f"{kind}-{canvas}-{pen}-{i}.png")
        Image.fromarray(redraw(d, canvas, pen, dark_on_light=i % 2 == 0)).save(files[-1])
    return files
