"""A run's checkpoint: what continuing it bit for bit needs besides the config. The arrays (the
network's parameters and buffers as ``param.KEY``, the optimizer's carried arrays as
``opt.KEY``) and ``state``, a JSON string that :class:`CheckpointDoc` declares: the loop's
counters (:class:`State`), the metrics rows so far, the optimizer's step and the run's length.
"""

from __future__ import annotations

import json
from dataclasses import asdict, field
from typing import Annotated, Optional, Union

import annotated_types as at
from pydantic import ConfigDict, ValidationError
from pydantic.dataclasses import dataclass

from bpnet.base.schema import Integer, Model, first_error
from bpnet.base.text import clip
from bpnet.training.weights import Npz, WeightsError, load_npz, parse_json, save_npz

Row = dict[str, Union[int, float, None]]


@dataclass(config=ConfigDict(strict=True, extra="forbid"))
class State:
    """Everything besides parameters and optimizer arrays that a resume needs."""

    iteration: int = 0
    epoch: int = 0
    loss_sum: float = 0.0  # cross-entropy of the epoch's batches, times their sizes
    penalty_sum: float = 0.0  # the weight-decay term at each of those batches, likewise
    correct: int = 0
    seen: int = 0
    best: float = -1.0
    best_iteration: int = 0
    loss_limit: Optional[float] = None
    bad_evals: int = 0
    elapsed: float = 0.0
    eval_seconds: float = 0.0  # of elapsed, spent evaluating and saving
    rows: list[Row] = field(default_factory=list)


class CheckpointDoc(Model):
    """The ``state`` string of a checkpoint."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=True)

    opt_step: Annotated[Integer, at.Ge(0)]
    total: Annotated[Integer, at.Gt(0)]
    rows: list[Row]
    state: dict


def write_checkpoint(path, arrays, opt_state, opt_step, state, total):
    """Write a checkpoint of the network's ``arrays`` (copies), the optimizer's ``opt_state``
    and ``opt_step``, the loop's ``state`` and the run's ``total`` iterations, atomically."""
    extra = {k: v for k, v in asdict(state).items() if k != "rows"}
    doc = {"state": extra, "rows": state.rows, "opt_step": opt_step, "total": total}
    save_npz(
        path,
        {
            **{f"param.{k}": v for k, v in arrays.items()},
            **{f"opt.{k}": v for k, v in opt_state.items()},
            "state": json.dumps(doc),
        },
    )


def _state(path, text):
    """(CheckpointDoc, State) of a checkpoint's ``state`` string; WeightsError otherwise."""
    raw = parse_json(path, text, "state")
    if not isinstance(raw, dict):
        raise WeightsError(f"{path}: state is not a bpnet checkpoint's (expected a JSON object)")
    try:
        doc = CheckpointDoc.model_validate(raw)
        return doc, State(**doc.state, rows=doc.rows)
    except ValidationError as e:
        if e.title == "CheckpointDoc":
            key, reason = first_error(CheckpointDoc, e, raw)
        else:  # the loop's counters
            err = e.errors(include_url=False)[0]
            key = "state." + ".".join(map(str, err["loc"]))
            reason = f"{err['msg'][:1].lower()}{err['msg'][1:]}"
        raise WeightsError(
            f"{path}: state is not a bpnet checkpoint's ({key}: {clip(reason)})"
        ) from None


def checkpoint_progress(path):
    """(iteration, total): how far the run of the checkpoint at ``path`` has come, read from its
    state alone (no array is read); WeightsError when it is no bpnet checkpoint."""
    with Npz(path, "checkpoint") as z:
        if "state" not in z.headers:
            z.fail("no 'state' string; expected a bpnet checkpoint")
        doc, state = _state(path, z.text("state"))
    return state.iteration, doc.total


def read_checkpoint(path, param_shapes, opt_shape):
    """(params, opt_state, opt_step, State, total) of the checkpoint at ``path``, every array
    header checked against ``param_shapes`` ({key: shape}) or ``opt_shape`` before it is
    read, the state against :class:`CheckpointDoc`; anything else is a WeightsError."""
    arrays = load_npz(
        path,
        "checkpoint",
        lambda key: (
            param_shapes.get(key[len("param.") :], opt_shape if key.startswith("opt.") else None)
            if key.startswith(("param.", "opt."))
            else None
        ),
    )
    text = arrays.pop("state", None)
    if text is None or text.shape != () or text.dtype.kind != "U":
        raise WeightsError(f"{path}: no 'state' string; expected a bpnet checkpoint")
    doc, state = _state(path, str(text[()]))
    params = {k[len("param.") :]: v for k, v in arrays.items() if k.startswith("param.")}
    opt_state = {k[len("opt.") :]: v for k, v in arrays.items() if k.startswith("opt.")}
    return params, opt_state, doc.opt_step, state, doc.total
