"""The run directory: which files make a run, when bpnet may write into a folder, and how a new
run replaces an old one whole. bpnet's policy over the domain-free folder moves of
bpnet.base.folders, used by the Trainer and by ``bpnet train`` alike, so that a run started
from Python is as safe as one started from the command line:

  a new run   into a folder that holds no run (RunExists otherwise, naming the ways out:
              resume it, replace it, or train a new run beside it);
  replace     (``bpnet train --force``, ``Trainer(..., replace=True)``) a folder holding a run
              and nothing else: the new run is built in a staging folder beside it and swapped
              in only once it has started, so a run that fails before then (data, memory, the
              first checkpoint) leaves the old run as it was;
  resume      (``bpnet train --resume``, ``Trainer.load_checkpoint()``) a folder with the
              run's config.yaml; written in place.
Before any of them, what a killed replacement left beside the folder is tidied away
(``clean_leftovers``).
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from bpnet.base.folders import clean_leftovers, staging_dir, swap_dirs
from bpnet.base.yamlsafe import load_yaml
from bpnet.errors import BpnetError, ConfigError, InputError
from bpnet.training.checkpoint import checkpoint_progress
from bpnet.training.config import FIELDS, get
from bpnet.training.weights import WeightsError, read_meta

RUN_FILES = ("weights.npz", "best.npz", "checkpoint.npz", "metrics.csv", "config.yaml")
DERIVED_FILES = ("metrics.png", "filters.png", "feature-maps.png")  # drawn by `bpnet plot`
# Config keys that do not make another run: where its data and files are, its name, and the
# threads of the products (which give the same weights).
NOT_THE_RUN = ("name", "data_dir", "output.dir", "train.threads")
LENGTH_KEYS = ("train.epochs", "train.iterations")


class RunExists(InputError):
    """The folder already holds a run, and replacing it was not asked for. ``resume``: the
    command that continues it (None without a checkpoint); ``beside``: a free folder next to it."""

    def __init__(self, message, run_dir, existing, resume, beside):
        super().__init__(message)
        self.run_dir, self.existing, self.resume, self.beside = run_dir, existing, resume, beside


def run_files(run_dir):
    """The names of a run's files (and of files drawn from them) present in ``run_dir``."""
    run_dir = Path(run_dir)
    return [f for f in RUN_FILES + DERIVED_FILES if (run_dir / f).exists()]


def beside(run_dir):
    """The first free sibling ``<run_dir>-2``, ``-3``, ...: where a new run goes beside it."""
    run_dir = Path(run_dir)
    return next(
        run_dir.with_name(f"{run_dir.name}-{i}")
        for i in range(2, 10**6)
        if not run_dir.with_name(f"{run_dir.name}-{i}").exists()
    )


@dataclass(frozen=True)
class Finished:
    """A run that went to its end: its weights.npz is of its checkpoint's ``iteration`` (of
    ``total``; fewer after an early stop), ``metrics`` its last row, ``differences`` the keys
    where the config it was set against differs from its config.yaml, as (key, there, here)."""

    iteration: int
    total: int
    metrics: dict
    differences: tuple


def finished_run(run_dir, cfg):
    """The :class:`Finished` run in ``run_dir`` set against the resolved config ``cfg`` (keys
    of NOT_THE_RUN aside), or None when the folder holds no run that went to its end: an
    interrupted run, or files that do not read as a bpnet run. What a killed replacement left
    beside it is tidied first (see clean_leftovers)."""
    from bpnet.training.sources import load_config

    run_dir = Path(run_dir)
    clean_leftovers(run_dir)
    if not all((run_dir / f).is_file() for f in ("weights.npz", "checkpoint.npz", "config.yaml")):
        return None
    try:
        iteration, total = checkpoint_progress(run_dir / "checkpoint.npz")
        meta = read_meta(run_dir / "weights.npz")
        saved = load_config(run_dir / "config.yaml")
    except BpnetError:
        return None
    if meta.get("iteration") != iteration:
        return None
    differences = tuple(
        (key, get(saved, key), get(cfg, key))
        for key in FIELDS
        if key not in NOT_THE_RUN and get(saved, key) != get(cfg, key)
    )
    return Finished(iteration, total, meta.get("metrics") or {}, differences)


def check_new_run(run_dir, replace=False, data_dir=None, command=False, cfg=None):
    """Before a new run into ``run_dir``: the names of the run files already there (after
    tidying what a killed replacement left, so that a run it had set aside is back first).

    Holding a run without ``replace``: RunExists, naming ways out that work as typed (the
    resume command repeats ``data_dir``, the --data-dir given); with ``cfg``, the new run's
    config, it also names where the run there was configured otherwise, and a run that only
    differs in length is offered the command that extends it. With ``replace``: an InputError
    when the folder also holds files that are not a run's, as it is replaced whole. ``command``:
    word the ways out as options of the ``bpnet train`` command being run, else for a Trainer.
    """
    run_dir = Path(run_dir)
    clean_leftovers(run_dir)
    existing = run_files(run_dir)
    if existing and not replace:
        finished = finished_run(run_dir, cfg) if cfg is not None else None
        raise _refusal(run_dir, existing, data_dir, command, finished, cfg)
    if existing:
        others = sorted(
            p.name
            for p in run_dir.iterdir()
            if not p.name.startswith(".") and p.name not in RUN_FILES + DERIVED_FILES
        )
        if others:
            how = "--force" if command else "replace=True"
            elsewhere = "another --out" if command else "another folder"
            raise InputError(
                f"{run_dir} holds files that are not part of a run "
                f"({', '.join(others[:5])}{', ...' if len(others) > 5 else ''}); "
                f"{how} replaces a run directory whole: move them, or train "
                f"into {elsewhere}"
            )
    return existing


def resume_command(run_dir, data_dir=None, *extra):
    """The ``bpnet train --resume`` line that continues the run in ``run_dir``, as typed."""
    return shlex.join(
        ["bpnet", "train", "--resume", str(run_dir)]
        + (["--data-dir", str(data_dir)] if data_dir else [])
        + list(extra)
    )


def _show(value):
    return "null" if value is None else str(value)


def _refusal(run_dir, existing, data_dir, command, finished=None, cfg=None):
    ways, resume, other = [], None, ""
    if finished is not None and finished.differences:
        shown = "; ".join(
            f"{key}: {_show(there)} there, {_show(here)} here"
            for key, there, here in finished.differences[:3]
        )
        more = len(finished.differences) - 3
        other = f" of another config ({shown}{f'; {more} more' if more > 0 else ''})"
        longer = _longer(finished, cfg)
        if longer:
            resume = resume_command(run_dir, data_dir, *longer)
            ways.append(f"extend it to {longer[1]} {longer[0][2:]} with `{resume}`")
    elif "checkpoint.npz" in existing and finished is None:
        resume = resume_command(run_dir, data_dir)
        ways.append(
            f"continue it with `{resume}`"
            + ("" if command else " (from Python: Trainer.load_checkpoint() before run())")
        )
    free = beside(run_dir)
    if command:
        ways += [
            "replace it by adding --force to this command",
            f"train a new run beside it by adding --out {shlex.quote(str(free))}",
        ]
    else:
        ways += [
            "replace it with Trainer(..., replace=True) (bpnet train --force)",
            f"train a new run beside it in {free}",
        ]
    return RunExists(
        f"{run_dir} already holds a run ({', '.join(existing)}){other}: "
        f"{', '.join(ways[:-1])}, or {ways[-1]}",
        run_dir,
        existing,
        resume,
        free,
    )


def _longer(finished, cfg):
    """``["--epochs", "N"]`` (or iterations) when ``cfg`` differs from the finished run only
    in being longer, counted in the same unit; else None."""
    if any(key not in LENGTH_KEYS for key, _, _ in finished.differences):
        return None
    for key, there, here in finished.differences:
        if there is not None and here is not None and here > there:
            return [f"--{key.split('.')[1]}", str(here)]
    return None


def check_resumable(run_dir):
    """``run_dir`` as a Path when it is a run that can be continued (it holds config.yaml),
    else an InputError; what a killed replacement left beside it is tidied first."""
    run_dir = Path(run_dir)
    clean_leftovers(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise InputError(
            f"{run_dir}: not a run directory (no config.yaml); --resume takes a "
            f"folder that bpnet train or Trainer.run() wrote"
        )
    return run_dir


def unfinished(run_dir, missing):
    """The InputError for file ``missing`` (``weights.npz``, ``best.npz``, ``metrics.csv``) of
    a run that stopped before writing it and before its end (Ctrl-C in the first epoch, or
    during ``--force``): where it stopped and the command that resumes it. None when
    ``run_dir`` holds no such run: ``missing`` is there, the run has its weights.npz, or it
    has no checkpoint and config.yaml to resume from."""
    run_dir = Path(run_dir)
    if (
        (run_dir / missing).exists()
        or (run_dir / "weights.npz").exists()
        or not (run_dir / "checkpoint.npz").is_file()
        or not (run_dir / "config.yaml").is_file()
        or (missing == "best.npz" and not _validates(run_dir))
    ):
        return None
    try:
        iteration, total = checkpoint_progress(run_dir / "checkpoint.npz")
        where = f"at iteration {iteration} of {total}"
    except WeightsError:
        where = "before its end"
    return InputError(
        f"{run_dir}: the run was interrupted {where} and has no {missing} yet; resume it "
        f"with `{resume_command(run_dir)}`"
    )


def _validates(run_dir):
    """Whether the run in ``run_dir`` holds out validation images (so it writes best.npz)."""
    try:
        cfg = load_yaml((run_dir / "config.yaml").read_text(encoding="utf-8"), "config.yaml")
        return cfg["data"]["validation"] > 0
    except (OSError, UnicodeDecodeError, ConfigError, TypeError, KeyError):
        return True


def weights_path(path):
    """The weights file a command reads for ``path``: a run directory's weights.npz, else
    ``path`` itself. A run interrupted before it wrote that file is an InputError saying so."""
    path = Path(path)
    run_dir, name = (path, "weights.npz") if path.is_dir() else (path.parent, path.name)
    if name in ("weights.npz", "best.npz"):
        error = unfinished(run_dir, name)
        if error is not None:
            raise error
    if path.is_dir() and not (path / name).exists():
        raise InputError(
            f"{path}: a folder without weights.npz; expected a weights file or a run directory"
        )
    return run_dir / name if path.is_dir() else path


class RunDir:
    """Where a run's files go from its start to its end. ``target``: the run directory;
    ``path``: the folder written now, a staging sibling of ``target`` while a replacement has
    not started (``staged``), else ``target`` itself.

        d = RunDir(target, replace)
        d.open(resume)     # before the first write: checks, then stages a replacement
        ...                # write the run's first files into d.path
        d.started()        # they are on disk: a staged replacement takes the old run's place
        d.abandon()        # on a failure: a replacement that never started is deleted
    """

    def __init__(self, target, replace=False):
        self.target, self.replace = Path(target), replace
        self.path, self.staged = self.target, False

    def open(self, resume=False):
        """Ready ``path`` for writing: a resumed run in place (tidied, see clean_leftovers); a
        new one after check_new_run, in a staging folder when it replaces a run."""
        if resume:
            clean_leftovers(self.target)
        elif check_new_run(self.target, self.replace):
            self.path, self.staged = staging_dir(self.target), True
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path

    def started(self):
        """The new run has started (its first files are written and flushed): put it in the
        old run's place, which is deleted."""
        if self.staged:
            swap_dirs(self.path, self.target)
            self.path, self.staged = self.target, False

    def abandon(self):
        """The run failed: a replacement that never started is deleted, the old run stays."""
        if self.staged:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path, self.staged = self.target, False
