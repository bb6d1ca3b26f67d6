"""PNG files as the tests check them."""

from __future__ import annotations

import struct

import pytest


def png_size(path):
    """(width, height) from the IHDR chunk, after checking that Pillow decodes every pixel."""
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
    width, height = struct.unpack(">II", raw[16:24])
    Image = pytest.importorskip("PIL.Image")
    with Image.open(path) as im:
        im.load()
        assert im.size == (width, height)
    return width, height
