"""What defines a sweep, as the study it runs in keeps it: a study belongs to one sweep.

The study's maker writes :func:`definition` as the study's user attribute ``sweep``; whoever
joins compares its own with it (:func:`differences`) and is refused, by name, when they
differ. The record is canonical JSON (sorted keys), so records made on two machines from the
same sweep file compare equal, whatever ``--data-dir`` each gives.
"""

from __future__ import annotations

import hashlib
import json

from bpnet.base.yamlsafe import show
from bpnet.training.config import FIELDS, get

LOCAL_KEYS = ("name", "data_dir", "output.dir", "train.threads")  # where, not what, a trial trains
MAX_RECORDED = 4096  # characters of a dimension's values kept as they are in a study's record


def _canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def differences(here, there):
    """What differs between two :func:`definition` records (this sweep's, the study's), one
    short phrase each: ``space.train.lr: log_uniform [0.01, 0.5] here, log_uniform [0.001,
    0.1] in the study``, ``train.epochs (fixed): 2 here, 3 in the study``."""
    found = []
    for part in ("space", "fixed"):
        mine, theirs = here.get(part) or {}, there.get(part) or {}
        for key in sorted(set(mine) | set(theirs), key=lambda k: (k not in mine, k)):
            a, b = mine.get(key, _ABSENT), theirs.get(key, _ABSENT)
            if a != b:
                name = f"space.{key}" if part == "space" else f"{key} (fixed)"
                absent = "not searched" if part == "space" else "no such key"
                found.append(f"{name}: {_brief(a, absent)} here, {_brief(b, absent)} in the study")
    for key in ("n_trials", "metric", "sampler", "seed", "pruner"):
        if here.get(key) != there.get(key):
            found.append(f"{key}: {show(here.get(key))} here, {show(there.get(key))} in the study")
    return found


_ABSENT = object()


def _brief(value, absent):
    if value is _ABSENT:
        return absent
    if isinstance(value, dict) and len(value) == 1:
        ((kind, values),) = value.items()
        if isinstance(values, dict) and "count" in values:
            return f"{kind} of {values['count']} values (sha256 {values['sha256'][:12]})"
        return f"{kind} {show(values)}"
    return show(value)


def definition(sweep):
    """What defines this sweep, JSON-ready, for the study it runs in to keep: the fixed
    settings (each config key a trial does not search, as a trial gets it, except those
    that only say where things are), the space, sampler, seed, budget, metric and pruner.
    A long list of choices is kept as its count and SHA-256."""
    searched = {d.key for d in sweep.space}
    cfg = sweep.trial_config({}, number=0)
    fixed = {k: get(cfg, k) for k in FIELDS if k not in searched and k not in LOCAL_KEYS}
    space = {}
    for d in sweep.space:
        text = _canonical(d.values)
        space[d.key] = {d.kind: d.values}
        if len(text) > MAX_RECORDED:
            digest = hashlib.sha256(text.encode()).hexdigest()
            space[d.key] = {d.kind: {"count": len(d.values), "sha256": digest}}
    return json.loads(
        _canonical(
            {
                "fixed": fixed,
                "space": space,
                "sampler": sweep.sampler,
                "seed": sweep.seed,
                "n_trials": sweep.n_trials,
                "metric": sweep.metric,
                "pruner": sweep.pruner,
            }
        )
    )
