"""The largest inputs bpnet reads, each changeable by an environment variable.

Every reader checks what a file claims (its size, a header's shape, a config's layer sizes)
against these limits before allocating anything, so a bad input costs what a good one needs.
Sizes accept a plain number of bytes or a suffix: ``300K``, ``64M``, ``2G``.
"""

from __future__ import annotations

import os
import re
import resource

from bpnet.errors import InputError

# name -> (environment variable, default, what it bounds)
LIMITS = {
    "config_bytes": ("BPNET_MAX_CONFIG_BYTES", 256 * 1024, "size of a config file"),
    "meta_bytes": (
        "BPNET_MAX_META_BYTES",
        4 * 1024 * 1024,
        "size of a weights file's meta / a checkpoint's state (JSON)",
    ),
    "weights_bytes": (
        "BPNET_MAX_WEIGHTS_BYTES",
        1024**3,
        "array data a weights or checkpoint file may declare",
    ),
    "image_bytes": ("BPNET_MAX_IMAGE_BYTES", 64 * 1024 * 1024, "size of an image file"),
    "image_pixels": ("BPNET_MAX_IMAGE_PIXELS", 4096 * 4096, "pixels of an image (width x height)"),
    "memory": (
        "BPNET_MAX_MEMORY",
        None,
        "memory a config may need (default: physical memory, or the address-space limit if lower)",
    ),
}
MAX_DEPTH = 32  # nesting of a YAML config or a weights file's meta; bpnet's own use 3
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text):
    """Bytes of ``"64M"``, ``"2G"``, ``"300k"`` or ``"123"``; ValueError otherwise."""
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(text)
    return int(float(m.group(1)) * 1024 ** " kmgt".index((m.group(2) or " ").lower()))


def system_memory():
    """Bytes this process may use: physical memory, capped by RLIMIT_AS when one is set."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        total = 8 * 1024**3
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return min(total, soft) if soft != resource.RLIM_INFINITY else total


def limit(name):
    """The current value of one of LIMITS (its environment variable, else the default)."""
    var, default, what = LIMITS[name]
    raw = os.environ.get(var)
    if raw is None or not raw.strip():
        return system_memory() if default is None else default
    try:
        return parse_size(raw)
    except ValueError:
        raise InputError(
            f"{var}={raw[:40]!r}: expected a size in bytes such as 64M or 2G (the largest {what})"
        ) from None
