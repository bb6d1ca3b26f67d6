"""Text helpers for one-line messages: sizes, clipped text, short excerpts of values."""

from __future__ import annotations


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
