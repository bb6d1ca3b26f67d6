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
from pathlib import Path

from bpnet.base.folders import clean_leftovers, staging_dir, swap_dirs
from bpnet.errors import InputError

RUN_FILES = ("weights.npz", "best.npz", "checkpoint.npz", "metrics.csv", "config.yaml")
DERIVED_FILES = ("metrics.png",)  # drawn from a run's files by `bpnet plot`


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


def check_new_run(run_dir, replace=False, data_dir=None, command=False):
    """Before a new run into ``run_dir``: the names of the run files already there (after
    tidying what a killed replacement left, so that a run it had set aside is back first).

    Holding a run without ``replace``: RunExists, naming ways out that work as typed (the
    resume command repeats ``data_dir``, the --data-dir given). With ``replace``: an InputError
    when the folder also holds files that are not a run's, as it is replaced whole. ``command``:
    word the ways out as options of the ``bpnet train`` command being run, else for a Trainer.
    """
    run_dir = Path(run_dir)
    clean_leftovers(run_dir)
    existing = run_files(run_dir)
    if existing and not replace:
        raise _refusal(run_dir, existing, data_dir, command)
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


def _refusal(run_dir, existing, data_dir, command):
    ways, resume = [], None
    if "checkpoint.npz" in existing:
        resume = shlex.join(
            ["bpnet", "train", "--resume", str(run_dir)]
            + (["--data-dir", str(data_dir)] if data_dir else [])
        )
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
        f"{run_dir} already holds a run ({', '.join(existing)}): "
        f"{', '.join(ways[:-1])}, or {ways[-1]}",
        run_dir,
        existing,
        resume,
        free,
    )


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
