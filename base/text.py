"""Text helpers for one-line messages: sizes, clipped text, short excerpts of values, file names
made safe to print."""

from __future__ import annotations

import os
import unicodedata


def human(n):
    """``1.5 GB``-style size of ``n`` bytes (powers of 1024)."""
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PB"


def clip(text, width=80):
    """``text`` on one line (runs of whitespace made one space), cut to ``width`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def excerpt(value, width=60):
    """``repr``-like text of ``value``, cut to ``width`` characters (huge values stay short)."""
    if isinstance(value, (list, tuple, dict)) and len(value) > width:
        text = f"{type(value).__name__} of {len(value)} entries"
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        text = f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    else:
        try:
            text = repr(value)
        except (ValueError, RecursionError):
            text = f"a {type(value).__name__}"
    return text if len(text) <= width else text[: width - 3] + "..."


# Characters that change how text after them is shown: bidirectional embeddings, overrides,
# isolates and marks (U+061C, U+200E-F, U+202A-E, U+2066-9), and line/paragraph separators.
_LAYOUT = frozenset("\u061c\u200e\u200f\u2028\u2029") | frozenset(map(chr, range(0x202A, 0x202F)))
_LAYOUT |= frozenset(map(chr, range(0x2066, 0x206A)))
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(c):
    code = ord(c)
    if c in _SHORT:
        return _SHORT[c]
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(name):
    """A file name (str, bytes or path) as it may be printed on one line: control characters
    (newlines, tabs, ESC, DEL, C1), bidirectional controls, line separators and lone surrogates
    are shown escaped (``\\n``, ``\\x1b``, ``\\u202e``; an undecodable byte as ``\\xff``), every
    other character, ordinary Unicode included, as it is. The result never spans two lines,
    never moves the cursor nor reorders what follows, and printing it again changes nothing."""
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    elif not isinstance(name, str):
        try:
            name = os.fspath(name)
        except TypeError:
            name = str(name)
        if isinstance(name, bytes):
            name = os.fsdecode(name)
    if name.isprintable() and name.isascii():
        return name
    return "".join(
        _escape(c) if c in _LAYOUT or unicodedata.category(c) in ("Cc", "Cs") else c for c in name
    )


def display_width(text):
    """Terminal columns ``text`` takes: two for wide East Asian characters, none for combining
    marks, one for the rest (so tables of file names stay aligned)."""
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )
