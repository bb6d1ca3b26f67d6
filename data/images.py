"""Reading digit images and turning them into MNIST-style 28×28 inputs.

``read_image`` decodes PNG and JPEG (through Pillow, the optional extra ``bpnet[image]``), PGM
(P2 and P5, 8 and 16 bit, parsed here) and NPY (2-D uint8, integer, bool or float arrays, never
pickles) into a float (H, W) array of grey levels 0..255. The format is told by the file's first
bytes, not its name. Every size is read from the header bytes here and checked against
``limit("image_pixels")`` before any decoder sees them; reading touches no process-wide state
(neither Pillow's ``MAX_IMAGE_PIXELS`` nor the ``warnings`` filters), so threads may read
images at once.

``mnist_preprocess`` repeats what MNIST's makers did to each digit: a light digit on a dark
background (inverted when the border is light; the border's median is the background, and
three times its 95th percentile above that is a noise floor below which pixels become 0, which
is 0 for a clean image), cropped to the digit's bounding box, scaled into a 20×20 box keeping
the aspect ratio (anti-aliased tent filter when shrinking, bilinear when growing), and placed
in a 28×28 field so that its centre of mass sits at pixel (14, 14), where MNIST's own digits
have theirs. Two steps make drawings look like MNIST's bold pen strokes: strokes that would
come out thinner than nearly all of MNIST's (a 4 px pen on a 600 px canvas ends up a fifth of
a pixel wide) are first thickened to MNIST's median width, and the scaled digit is stretched
so that its brightest pixel is 255, as in MNIST.
"""

from __future__ import annotations

import io
import math
import re
import struct

import numpy as np

from bpnet.base.extras import ExtraMissing, require
from bpnet.base.files import ZIP_MAGIC, describe, npy_header, read_bytes
from bpnet.base.limits import limit
from bpnet.base.text import clip, excerpt, printable
from bpnet.errors import InputError

PNG_MAGIC, JPEG_MAGIC, NPY_MAGIC = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"\x93NUMPY"
FORMATS = "PNG, JPEG, PGM (P2/P5) or NPY"
SIDE, BOX, CENTRE = 28, 20, 14.0
NOISE_FLOOR = 3.0  # the noise floor, in 95th percentiles of the border above the background
MIN_CONTRAST = 8.0  # fewer grey levels than this between background and brightest: blank
# Stroke widths (``stroke_width``) of MNIST's 10,000 test digits in 28×28 pixels: 1st percentile
# 1.39, 5th 1.67, median 2.51, 95th 3.89, 99th 4.73; 52 are below 1.3. A digit whose strokes
# would come out thinner than THIN_STROKE is thickened to MNIST_STROKE. WORK_SIDE: larger
# digits are first reduced to this side (8 pixels per output pixel: strokes still resolved,
# thickening cheap).
THIN_STROKE, MNIST_STROKE, WORK_SIDE = 1.3, 2.5, 8 * BOX
_PGM_TOKEN = re.compile(rb"(?:\s|#[^\r\n]*)+(\d+)")


class ImageSupportMissing(ExtraMissing):
    """Pillow is needed for PNG/JPEG and is not installed (exit status 1)."""


def read_image(path):
    """Grey levels 0..255 (float64, shape (H, W)) of a PNG, JPEG, PGM or NPY file.

    Only regular files of at most ``limit("image_bytes")`` bytes are read, and an image of
    more than ``limit("image_pixels")`` pixels is refused from its header, before decoding.
    """
    raw = read_bytes(
        path, InputError, InputError, limit("image_bytes"), "an image (BPNET_MAX_IMAGE_BYTES)"
    )
    return read_image_bytes(raw, path)


def read_image_bytes(raw, path):
    """``read_image`` of bytes ``raw`` already bounded by ``limit("image_bytes")``;
    ``path`` names them in errors."""
    path = printable(path)  # only ever named in messages: one line, whatever it holds
    if raw.startswith(PNG_MAGIC):
        img = _read_pillow(raw, path, "PNG")
    elif raw.startswith(JPEG_MAGIC):
        img = _read_pillow(raw, path, "JPEG")
    elif raw[:2] in (b"P2", b"P5"):
        img = _read_pgm(raw, path)
    elif raw.startswith(NPY_MAGIC):
        img = _read_npy(raw, path)
    else:
        hint = (
            " (weights? they come first: bpnet predict WEIGHTS IMAGE...)"
            if raw.startswith(ZIP_MAGIC)
            else ""
        )
        raise InputError(f"{path}: not a {FORMATS} image: {describe(raw[:512])}{hint}")
    if img.size == 0:
        raise InputError(f"{path}: empty image ({img.shape[0]}x{img.shape[1]} pixels)")
    return img


def declared_size(raw):
    """(format, width, height) that the header of image bytes ``raw`` declares, read as
    ``read_image_bytes`` reads it, before anything is decoded (format: PNG, JPEG, P2, P5 or
    NPY); None when there is no readable header, which the reader refuses before allocating."""
    try:
        if raw.startswith(PNG_MAGIC):
            return ("PNG", *png_size(raw))
        if raw.startswith(JPEG_MAGIC):
            return ("JPEG", *jpeg_size(raw))
        if raw[:2] in (b"P2", b"P5"):
            return (raw[:2].decode(), *_pgm_header(raw, "")[:2])
        if raw.startswith(NPY_MAGIC):
            shape = npy_header(io.BytesIO(raw))[0]
            return "NPY", shape[-1] if shape else 1, math.prod(shape[:-1])
    except (ValueError, InputError):
        pass
    return None


def _read_pillow(raw, path, kind):
    """Grey levels of a PNG or JPEG, decoded by Pillow without touching any of its globals.

    The size is read here from the header bytes (``png_size``, ``jpeg_size``) and checked
    against ``limit("image_pixels")`` before Pillow sees the file. The bytes then go to the
    format's own reader class (what ``Image.open`` picks for these magic bytes; of a
    multi-picture JPEG, the first picture, its frame 0), not through ``Image.open``: its
    decompression-bomb check reads the process-wide ``Image.MAX_IMAGE_PIXELS`` and warns
    through the process-wide ``warnings`` filters. bpnet's own limit, already applied, is the
    one that governs its reads, so nothing has to be switched off, and a
    ``BPNET_MAX_IMAGE_PIXELS`` raised above Pillow's limit reads such images without a
    warning. Pillow's global is neither changed nor consulted, so requests decoding at once in
    ``bpnet serve``, and a program's own use of Pillow, never see it move.
    """
    require("PIL", "image", f"{path}: reading {kind}", "Pillow", ImageSupportMissing)
    from PIL import JpegImagePlugin, PngImagePlugin

    try:
        width, height = png_size(raw) if kind == "PNG" else jpeg_size(raw)
    except ValueError as e:
        raise InputError(f"{path}: cannot decode {kind} ({e})") from None
    _check_pixels(path, kind, width, height)
    reader = PngImagePlugin.PngImageFile if kind == "PNG" else JpegImagePlugin.JpegImageFile
    try:
        with reader(io.BytesIO(raw)) as im:  # reads the header only
            _check_pixels(path, kind, *im.size)  # Pillow's reading of it, should it differ
            im.load()
            return _pillow_grey(im)
    except InputError:
        raise
    except (OSError, ValueError, SyntaxError) as e:  # Pillow's errors
        raise InputError(f"{path}: cannot decode {kind} ({clip(e)})") from None


# JPEG markers: frame headers (SOF0-3, 5-7, 9-11, 13-15, and DHP, which Pillow reads as one),
# markers without a length field (TEM, RST0-7, SOI, EOI, and JPG, which Pillow skips bare)
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xDE}
_JPEG_BARE = frozenset(range(0xD0, 0xDA)) | {0x01, 0xC8}


def png_size(raw):
    """(width, height) of PNG bytes from their IHDR chunk, walking the chunks up to the image
    data as Pillow does, every length checked against the bytes there are; ValueError when no
    whole IHDR comes first. Of several IHDRs (a broken file), the one with most pixels."""
    sizes, pos, cut = [], len(PNG_MAGIC), True
    while pos + 8 <= len(raw):
        length, kind = int.from_bytes(raw[pos : pos + 4], "big"), raw[pos + 4 : pos + 8]
        if not kind.isalpha():
            raise ValueError(f"broken chunk at byte {pos} (type {kind!r})")
        if kind in (b"IDAT", b"fdAT", b"IEND"):
            cut = False
            break
        if kind == b"IHDR":
            if length < 13:
                raise ValueError(f"IHDR chunk of {length} bytes, expected 13")
            if pos + 16 > len(raw):
                break
            sizes.append(struct.unpack(">II", raw[pos + 8 : pos + 16]))  # width, height
        pos += 12 + length  # length, type, data, CRC
    if not sizes:
        raise ValueError(
            f"header cut short: {len(raw)} bytes without a whole IHDR chunk"
            if cut
            else "no IHDR chunk before the image data"
        )
    return max(sizes, key=lambda s: s[0] * s[1])


def jpeg_size(raw):
    """(width, height) of JPEG bytes from their frame header (SOFn), walking the segments
    after SOI up to the first scan (SOS) as Pillow does (fill bytes and stray bytes between
    segments skipped, every length checked against the bytes there are); ValueError when no
    whole frame header comes before the scan. Of several (a hierarchical or broken file),
    the one with most pixels."""
    sizes, pos, cut = [], 2, True
    while True:
        pos = raw.find(b"\xff", pos)
        if pos < 0 or pos + 4 > len(raw):
            break
        marker = raw[pos + 1]
        if marker == 0xFF:  # a fill byte: the marker starts at the next 0xFF
            pos += 1
            continue
        if marker == 0x00 or marker in _JPEG_BARE:  # an escaped 0xFF, or no length follows
            pos += 2
            continue
        if marker < 0xC0:
            raise ValueError(f"no marker at byte {pos} (0xff{marker:02x})")
        if marker == 0xDA:  # start of scan: the frame header came before
            cut = False
            break
        length = int.from_bytes(raw[pos + 2 : pos + 4], "big")
        if length < 2:
            raise ValueError(f"segment 0xff{marker:02x} at byte {pos} of length {length}")
        if marker in _JPEG_FRAMES:
            if length < 8:
                raise ValueError(
                    f"frame header at byte {pos} of {length} bytes, expected 8 or more"
                )
            if pos + 9 > len(raw):
                break
            height, width = struct.unpack(">HH", raw[pos + 5 : pos + 9])
            sizes.append((width, height))
        pos += 2 + length
    if not sizes:
        raise ValueError(
            f"header cut short: {len(raw)} bytes without a whole frame header"
            if cut
            else "no frame header (SOFn) before the image data"
        )
    return max(sizes, key=lambda s: s[0] * s[1])


def _check_pixels(path, kind, width, height):
    """Refuse an image whose header claims more pixels than ``limit("image_pixels")``."""
    cap = limit("image_pixels")
    if width * height > cap:
        raise InputError(
            f"{path}: {kind} of {width}x{height} = {width * height} pixels, more "
            f"than the {cap} read (BPNET_MAX_IMAGE_PIXELS)"
        )


def _pillow_grey(im):
    """Grey levels 0..255 of a Pillow image of any mode; transparency is flattened onto a
    background that contrasts with the strokes (black under light strokes, else white)."""
    if im.mode.startswith("I"):  # 16-bit greyscale PNGs open as I;16 or I
        return np.asarray(im, dtype=np.float64) * (255.0 / 65535.0)
    if "A" in im.mode or "transparency" in im.info:
        grey, alpha = (np.asarray(c, dtype=np.float64) for c in im.convert("LA").split())
        alpha /= 255.0
        if alpha.min() < 1.0:
            strokes = grey[alpha > 0.5]
            background = 0.0 if strokes.size and strokes.mean() > 127.5 else 255.0
            return grey * alpha + background * (1.0 - alpha)
        return grey
    return np.asarray(im.convert("L"), dtype=np.float64)


def _pgm_header(raw, path):
    """(width, height, maxval, end of the header) of PGM bytes."""
    fields, pos = [], 2
    for name in ("width", "height", "maxval"):
        m = _PGM_TOKEN.match(raw, pos)
        if not m:
            raise InputError(f"{path}: PGM header has no valid {name}")
        fields.append(int(m.group(1)))
        pos = m.end()
    return (*fields, pos)


def _read_pgm(raw, path):
    """PGM, plain (P2, ASCII) or raw (P5, 8-bit or big-endian 16-bit); the first image."""
    width, height, maxval, pos = _pgm_header(raw, path)
    _check_pixels(path, "PGM", width, height)
    if not 0 < maxval < 65536:
        raise InputError(f"{path}: PGM maxval {maxval}, expected 1..65535")
    count = width * height
    if raw[:2] == b"P5":
        if pos >= len(raw) or not raw[pos : pos + 1].isspace():
            raise InputError(f"{path}: PGM header does not end in a whitespace byte")
        dtype = np.dtype(">u2" if maxval > 255 else "u1")
        data = raw[pos + 1 : pos + 1 + count * dtype.itemsize]
        if len(data) < count * dtype.itemsize:
            raise InputError(
                f"{path}: PGM has {len(data)} bytes of pixels, expected "
                f"{count * dtype.itemsize} for {width}x{height}"
            )
        pixels = np.frombuffer(data, dtype=dtype)
    else:
        body = re.sub(rb"#[^\r\n]*", b" ", raw[pos:])
        chars = np.frombuffer(body, dtype=np.uint8)
        digit = (chars >= ord("0")) & (chars <= ord("9"))
        values = int(np.count_nonzero(digit[1:] & ~digit[:-1])) + bool(digit[:1].any())
        if not np.isin(chars[~digit], np.frombuffer(b" \t\r\n\v\f", np.uint8)).all():
            raise InputError(
                f"{path}: PGM pixels hold characters other than digits and "
                f"spaces, expected non-negative integers"
            )
        if values < count:
            raise InputError(
                f"{path}: PGM has {values} values, expected {count} "
                f"non-negative integers for {width}x{height}"
            )
        # whitespace-separated decimal integers, parsed in C (no Python object per pixel)
        pixels = np.fromstring(body, dtype=np.int64, sep=" ")[:count]
    if pixels.size and pixels.max() > maxval:
        raise InputError(f"{path}: PGM pixel value {pixels.max()} above maxval {maxval}")
    return pixels.reshape(height, width) * (255.0 / maxval)


def _read_npy(raw, path):
    """A 2-D array: uint8/integers 0..255, bool (True is ink), or floats in 0..1 or 0..255."""
    try:
        shape, _, dtype = npy_header(io.BytesIO(raw))
        if dtype.hasobject:
            raise InputError(f"{path}: NPY holds pickled objects, which are never loaded")
        if len(shape) != 2:
            raise InputError(
                f"{path}: NPY array of shape {excerpt(shape)}, expected a 2-D (height, width) image"
            )
        _check_pixels(path, "NPY", shape[1], shape[0])
        if math.prod(shape) * dtype.itemsize > len(raw):
            raise InputError(
                f"{path}: NPY header claims {shape} {dtype}, more than the file's "
                f"{len(raw)} bytes hold"
            )
        a = np.load(io.BytesIO(raw), allow_pickle=False)
    except InputError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise InputError(f"{path}: NPY holds pickled objects, which are never loaded") from None
        raise InputError(f"{path}: not a readable NPY array ({clip(e)})") from None
    except (OSError, EOFError) as e:
        raise InputError(f"{path}: not a readable NPY array ({clip(e)})") from None
    if a.ndim != 2:
        raise InputError(
            f"{path}: NPY array of shape {a.shape}, expected a 2-D (height, width) image"
        )
    if a.dtype.kind == "b":
        return a * 255.0
    if a.dtype.kind not in "uif":
        raise InputError(f"{path}: NPY array of dtype {a.dtype}, expected uint8, integer or float")
    is_float, a = a.dtype.kind == "f", a.astype(np.float64)
    if a.size and not np.all(np.isfinite(a)):
        raise InputError(f"{path}: NPY array contains NaN or infinite values")
    if a.size and (a.min() < 0 or a.max() > 255):
        raise InputError(
            f"{path}: NPY values span {a.min():g}..{a.max():g}, expected 0..255 "
            f"(or 0..1 for floats)"
        )
    return a * 255.0 if is_float and a.size and a.max() <= 1.0 else a


def resize_matrix(n_in, n_out):
    """(n_out, n_in) weights resampling a row of n_in pixels to n_out pixels: a tent filter
    spanning two output pixels when shrinking (every input pixel counts, so thin strokes are
    averaged rather than skipped, as in Pillow's anti-aliased bilinear reduction), plain
    bilinear interpolation when growing, and the identity when n_in == n_out."""
    step = n_in / n_out
    support = max(1.0, step)
    centre = (np.arange(n_out) + 0.5) * step - 0.5
    w = np.maximum(0.0, 1.0 - np.abs(np.arange(n_in)[None, :] - centre[:, None]) / support)
    return w / w.sum(axis=1, keepdims=True)


def stroke_width(ink):
    """Mean stroke width in pixels of a digit (H, W) of grey levels >= 0: its ink (in units of
    the brightest pixel) over half the outline of the pixels at least half as bright. The
    outline is counted in pixel edges, a staircase 4/π times longer than a stroke's side on
    average over directions, hence the factor."""
    top = ink.max()
    p = np.pad(ink >= 0.5 * top, 1)
    edges = np.count_nonzero(p[1:] != p[:-1]) + np.count_nonzero(p[:, 1:] != p[:, :-1])
    return 8 / np.pi * float(ink.sum() / top) / max(edges, 1)


def dilate(img, steps):
    """Grey-level dilation (H, W) -> (H + 2·steps, W + 2·steps): each step takes the maximum
    over a 3×3 neighbourhood, cross and square in turn, so strokes grow by about ``steps``
    pixels on each side in every direction (an octagon, close to a round pen)."""
    for i in range(steps):
        p = np.pad(img, 1)
        if i % 2 == 0:
            img = np.maximum.reduce(
                [p[1:-1, 1:-1], p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]]
            )
        else:
            rows = np.maximum.reduce([p[:-2], p[1:-1], p[2:]])
            img = np.maximum.reduce([rows[:, :-2], rows[:, 1:-1], rows[:, 2:]])
    return img


def thicken(ink):
    """The digit (H, W) >= 0 with strokes grown to MNIST_STROKE pixels once scaled into the
    20-pixel box, when they would otherwise come out thinner than THIN_STROKE; else ``ink``.

    Growing each side by r pixels also grows the box by 2r, so r solves
    (w + 2r) · BOX / (side + 2r) = MNIST_STROKE for the stroke width w and the longer side.
    """
    side, width = max(ink.shape), stroke_width(ink)
    if width * BOX / side >= THIN_STROKE:
        return ink
    r = (MNIST_STROKE * side / BOX - width) / (2 * (1 - MNIST_STROKE / BOX))
    return dilate(ink, max(1, round(r)))


def resize(img, out_h, out_w):
    """(H, W) -> (out_h, out_w) with ``resize_matrix`` along each axis."""
    return resize_matrix(img.shape[0], out_h) @ img @ resize_matrix(img.shape[1], out_w).T


def mnist_preprocess(img):
    """(28, 28) float 0..255 digit from grey levels (H, W) 0..255, as MNIST prepared its own.

    Raises InputError for an image with no digit on it: no pixel above the border's noise
    floor, or less than MIN_CONTRAST grey levels between background and brightest pixel.
    """
    img = np.asarray(img, dtype=np.float64)
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    background = float(np.median(border))
    if background > 127.5:  # dark digit on light paper: make it light on dark
        img, background = 255.0 - img, 255.0 - background
    ink = np.clip(img - background, 0.0, None)
    edge = np.concatenate([ink[0], ink[-1], ink[:, 0], ink[:, -1]])
    lit = ink > NOISE_FLOOR * np.percentile(edge, 95)  # a clean scan's floor is 0: all ink counts
    if not lit.any() or ink.max() < MIN_CONTRAST:
        raise InputError("blank image: no digit found (no pixel stands out from the background)")
    rows, cols = np.flatnonzero(lit.any(axis=1)), np.flatnonzero(lit.any(axis=0))
    ink = np.where(lit, ink * (255.0 / ink.max()), 0.0)[
        rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1
    ]
    if max(ink.shape) > WORK_SIDE:  # every pixel counts in the reduction: thin strokes stay
        f = WORK_SIDE / max(ink.shape)
        ink = resize(ink, max(1, round(ink.shape[0] * f)), max(1, round(ink.shape[1] * f)))
    ink = thicken(ink)
    h, w = ink.shape
    scale = BOX / max(h, w)
    out_h, out_w = max(1, round(h * scale)), max(1, round(w * scale))
    digit = resize(ink, out_h, out_w)
    digit *= 255.0 / digit.max()  # MNIST's digits reach full intensity
    mass = digit.sum()
    com_y = (digit.sum(axis=1) * np.arange(out_h)).sum() / mass
    com_x = (digit.sum(axis=0) * np.arange(out_w)).sum() / mass
    y0 = int(np.clip(round(CENTRE - com_y), 0, SIDE - out_h))
    x0 = int(np.clip(round(CENTRE - com_x), 0, SIDE - out_w))
    field = np.zeros((SIDE, SIDE))
    field[y0 : y0 + out_h, x0 : x0 + out_w] = digit
    return field


def load_digit(path, raw=None):
    """``mnist_preprocess(read_image(path))``, with the file named in any error; with
    ``raw``, the image is those bytes and ``path`` only its name."""
    img = read_image(path) if raw is None else read_image_bytes(raw, path)
    try:
        return mnist_preprocess(img)
    except InputError as e:
        raise InputError(f"{printable(path)}: {e}") from None
