"""The training loop: mini-batch SGD over epoch permutations, with evaluation,
best-model tracking, early stopping, checkpoints, resume and a divergence (NaN) stop.

A run directory holds:
  weights.npz     final parameters (+ meta)
  best.npz        parameters with the best validation accuracy; only with a validation
                  split (nothing is ever selected on the test set)
  checkpoint.npz  everything needed to continue bit for bit: parameters, optimizer
                  state, counters (each epoch's permutation is a function of seed and epoch)
  metrics.csv     one row per evaluation; every ``*_loss`` is the mean cross-entropy,
                  the weight-decay term of the training objective is ``train_penalty``
  config.yaml     the resolved config, so ``bpnet train --resume RUN_DIR`` can continue it
With ``replace=True`` an existing run directory is replaced whole, and only once the new
run has started (data loaded, network built, first checkpoint written): the new run is built
in a sibling folder and swapped in; until then the old run stays as it was.
The loop takes progress reporting as an injected object, so it runs without any UI.
"""
from __future__ import annotations

import copy
import csv
import io
import math
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bpnet import __version__

from bpnet.base.files import atomic_write_text
from bpnet.base.folders import clean_leftovers, staging_dir, swap_dirs
from bpnet.base.text import clip
from bpnet.data.augment import Augmenter
from bpnet.errors import BpnetError
from bpnet.nn.evaluate import evaluate, input_scale, to_input
from bpnet.nn.network import MultiLayerNet
from bpnet.nn.optim import learning_rate, make_optimizer
from bpnet.nn.threads import use as use_threads
from bpnet.training.batches import (AUGMENT_STREAM, COLUMNS_MIN_WIDTH, DROPOUT_STREAM,
                                    INIT_STREAM, BatchStream, seeded_rng)
from bpnet.training.config import dump_config, network_kwargs
from bpnet.training.checkpoint import State, read_checkpoint, write_checkpoint
from bpnet.training.weights import WeightsError, save_weights

METRIC_COLUMNS = ["epoch", "iteration", "lr", "train_loss", "train_acc", "train_penalty",
                  "val_loss", "val_acc", "test_loss", "test_acc", "elapsed"]
# A cross-entropy this many times the first iteration's means the weights have blown up.
DIVERGENCE_FACTOR = 1000
RUN_FILES = ("weights.npz", "best.npz", "checkpoint.npz", "metrics.csv", "config.yaml")
DERIVED_FILES = ("metrics.png",)  # drawn from a run's files by `bpnet plot`


class TrainingDiverged(BpnetError):
    """The loss became NaN or infinite, or grew past DIVERGENCE_FACTOR times its first value."""


class TrainingInterrupted(BpnetError):
    """A stop was requested (SIGINT/SIGTERM); the checkpoint is saved."""

    def __init__(self, message, signal_name="SIGINT"):
        super().__init__(message)
        self.exit_code = 143 if signal_name == "SIGTERM" else 130


class Progress:
    """Hooks the loop calls; the command layer overrides them (tqdm, printing)."""

    def start(self, total, done, iters_per_epoch): ...
    def step(self, iteration, loss): ...
    def evaluated(self, row): ...
    def message(self, text): ...
    def close(self): ...


class StopFlag:
    """Set ``requested`` (e.g. from a signal handler) to stop after the current step."""

    def __init__(self):
        self.requested = None


class Trainer:
    """Trains the config's network on ``data``, writing into ``run_dir`` (whose path the
    run's config.yaml records as ``output.dir``); ``run_dir`` None: no files, the metrics stay
    in ``state.rows`` (a sweep's trials)."""

    def __init__(self, cfg, data, run_dir, progress=None, stop=None, replace=False):
        self.run_dir, self.data = None if run_dir is None else Path(run_dir), data
        if self.run_dir is not None:
            cfg = {**cfg, "output": {**cfg["output"], "dir": str(self.run_dir)}}
        self.cfg = cfg
        self.replace = replace  # run_dir holds an old run, replaced once this one has started
        self.progress, self.stop = progress or Progress(), stop or StopFlag()
        tr = cfg["train"]
        self.dtype = np.dtype(tr["dtype"])
        self.scale = input_scale(cfg["data"]["normalize"])
        self.batch_size = tr["batch_size"]
        n = len(data.train)
        self.iters_per_epoch = math.ceil(n / self.batch_size)
        self.total = tr["iterations"] or tr["epochs"] * self.iters_per_epoch
        self.net = MultiLayerNet(**network_kwargs(cfg), rng=seeded_rng(tr["seed"], INIT_STREAM))
        self.opt = make_optimizer(tr["optimizer"], tr["lr"], tr["momentum"], tr["beta1"],
                                  tr["beta2"], tr["eps"], tr["decay_rate"])
        self.flat = {"all": self.net.flat_params}  # the optimizer updates every parameter at once
        self.augmenter = Augmenter.from_config(cfg["augment"])
        # Validation and test inputs, converted once rather than at every evaluation.
        self.eval_inputs = {name: (to_input(split.x, self.scale, self.dtype), split.t)
                            for name, split in (("val", data.val), ("test", data.test))
                            if split is not None}
        self.state = State()
        self._ckpt_it = 0  # the iteration of the newest checkpoint written
        # best.npz is chosen on validation accuracy; without validation images nothing is
        # selected (choosing on the test set would make its accuracy an optimistic estimate).
        self.selected_on = "val" if data.val is not None else None

    # -- the loop ---------------------------------------------------------------
    def _augment(self, x, iteration):
        """Batch ``x`` of ``iteration`` augmented (called from the batch-preparing thread)."""
        self.augmenter.rng = seeded_rng(self.cfg["train"]["seed"], AUGMENT_STREAM, iteration)
        return self.augmenter(x)

    def run(self):
        """Train to the end (or an early stop); returns the last metrics row.

        Files are written by one background thread from snapshots, so saving overlaps
        training; every write has finished (or raised) when this returns or raises.
        """
        self.final_dir = None
        if self.run_dir is not None:
            clean_leftovers(self.run_dir)
            if self.replace and self.run_dir.exists():  # build the new run beside the old one
                self.final_dir, self.run_dir = self.run_dir, staging_dir(self.run_dir)
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bpnet-save")
        self._batches = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bpnet-batches")
        self._pending = []
        try:
            with use_threads(self.cfg["train"]["threads"]):
                result = self._loop()
        except BaseException:
            self._flush(raise_errors=False)
            if self.final_dir is not None:  # never started: the old run stays as it was
                shutil.rmtree(self.run_dir, ignore_errors=True)
                self.run_dir, self.final_dir = self.final_dir, None
            raise
        finally:
            self._batches.shutdown(wait=True, cancel_futures=True)
        self._flush()
        return result

    def _save(self, fn, *args):
        """Queue a write; a failure of an earlier one is raised here."""
        done = [f for f in self._pending if f.done()]
        self._pending = [f for f in self._pending if not f.done()]
        for f in done:
            f.result()
        self._pending.append(self._writer.submit(fn, *args))

    def _replace_old_run(self):
        """The new run has started (data, network, first checkpoint on disk): swap it in."""
        pending, self._pending = self._pending, []
        for f in pending:
            f.result()
        swap_dirs(self.run_dir, self.final_dir)
        self.run_dir, self.final_dir = self.final_dir, None

    def _flush(self, raise_errors=True):
        pending, self._pending = self._pending, []
        self._writer.shutdown(wait=True)
        errors = [e for e in (f.exception() for f in pending) if e is not None]
        if errors and raise_errors:
            raise errors[0]

    def _loop(self):
        tr, st, net, bs = self.cfg["train"], self.state, self.net, self.batch_size
        xs, ts = self.data.train.x, self.data.train.t
        batches = BatchStream(xs, ts, tr["seed"], tr["shuffle"], bs, self.scale, self.dtype,
                              self._batches, augment=self._augment if self.augmenter.active
                              else None, columns=self.net.sizes[1] >= COLUMNS_MIN_WIDTH
                              and not self.augmenter.active)
        if st.iteration == 0 and self.run_dir is not None:
            self._save(atomic_write_text, self.run_dir / "config.yaml", dump_config(self.cfg))
            self.save_checkpoint()  # the last good state, even if the first step diverges
        if self.final_dir is not None:
            self._replace_old_run()
        self.progress.start(self.total, st.iteration, self.iters_per_epoch)
        started = time.perf_counter() - st.elapsed
        eval_every = self.cfg["eval"]["every"]
        stopped_early = False
        while st.iteration < self.total:
            pos = st.iteration - st.epoch * self.iters_per_epoch
            x, t, cols = batches.batch(st.epoch, pos)
            m = len(t)
            if tr["schedule"] != "none":
                self.opt.lr = learning_rate(tr["schedule"], tr["lr"], st.iteration, self.total,
                                            self.iters_per_epoch, tr["step_epochs"], tr["gamma"],
                                            tr["min_lr"], tr["warmup"])
            if net.dropout:
                net.dropout_rng = seeded_rng(tr["seed"], DROPOUT_STREAM, st.iteration)
            loss = net.loss(x, t, train_flg=True, cols=cols)  # the objective: cross-entropy + weight-decay penalty
            if st.loss_limit is None:
                st.loss_limit = DIVERGENCE_FACTOR * max(loss, 1.0)
            if not loss <= st.loss_limit:  # also true for NaN
                what = f"{loss:.4g}, over {DIVERGENCE_FACTOR}x the first loss" if math.isfinite(
                    loss) else str(loss)
                raise TrainingDiverged(
                    f"training diverged: loss is {what} at iteration {st.iteration + 1} "
                    f"(lr {self.opt.lr:g}); "
                    + (f"stopped, the last good checkpoint is {self.run_dir / 'checkpoint.npz'} "
                       f"(iteration {self._ckpt_it}); " if self.run_dir else "")
                    + "try a smaller train.lr")
            st.correct += int(np.count_nonzero(net.last_layer.y.argmax(axis=1) == t))
            net.backward()
            self.opt.update(self.flat, {"all": net.flat_grads})
            st.iteration += 1
            st.loss_sum += net.cross_entropy * m
            st.penalty_sum += (loss - net.cross_entropy) * m
            st.seen += m
            self.progress.step(st.iteration, net.cross_entropy)
            if pos + 1 == self.iters_per_epoch:
                st.epoch += 1
                if st.epoch % eval_every == 0:
                    st.elapsed = time.perf_counter() - started
                    stopped_early = self.evaluate_and_save()
                    if stopped_early:
                        break
            if self.stop.requested and st.iteration < self.total:
                st.elapsed = time.perf_counter() - started
                self.save_checkpoint()
                raise TrainingInterrupted(
                    f"interrupted by {self.stop.requested} at iteration {st.iteration} of "
                    f"{self.total}; checkpoint saved; resume with: bpnet train --resume "
                    f"{self.run_dir}", self.stop.requested)
        st.elapsed = time.perf_counter() - started
        if not st.rows or st.rows[-1]["iteration"] != st.iteration:
            self.evaluate_and_save()
        self.save_weights(self.run_dir and self.run_dir / "weights.npz", final=True)
        self.save_checkpoint()
        return {"stopped_early": stopped_early, **st.rows[-1]}

    def evaluate_and_save(self):
        """Evaluate, append a metrics row, keep the best model (when there is a validation
        split); True when stopping early."""
        started = time.perf_counter()
        st = self.state
        seen = max(st.seen, 1)
        row = {"epoch": round(st.iteration / self.iters_per_epoch, 4), "iteration": st.iteration,
               "lr": self.opt.lr, "train_loss": st.loss_sum / seen, "train_acc": st.correct / seen,
               "train_penalty": st.penalty_sum / seen}
        st.loss_sum, st.penalty_sum, st.correct, st.seen = 0.0, 0.0, 0, 0
        bs = self.cfg["eval"]["batch_size"]
        for name, (x, t) in self.eval_inputs.items():
            row[f"{name}_loss"], row[f"{name}_acc"], _, _ = evaluate(self.net, x, t, self.scale, bs)
        row["elapsed"] = round(st.elapsed, 3)
        st.rows.append(row)
        es = self.cfg["early_stopping"]
        if self.selected_on is not None:
            score = row[f"{self.selected_on}_acc"]
            if score > st.best + es["min_delta"] or st.best < 0:
                st.best, st.best_iteration, st.bad_evals = score, st.iteration, 0
                self.save_weights(self.run_dir and self.run_dir / "best.npz", final=False)
            else:
                st.bad_evals += 1
        self.write_metrics()
        st.eval_seconds += time.perf_counter() - started
        self.save_checkpoint()
        self.progress.evaluated(row)
        stop = bool(es["patience"]) and st.bad_evals >= es["patience"]
        if stop:
            self.progress.message(
                f"early stop: validation accuracy has not improved for {st.bad_evals} "
                f"evaluations (best {st.best:.4f} at iteration {st.best_iteration})")
        return stop

    # -- files --------------------------------------------------------------------
    def meta(self, final):
        sizes = self.net.sizes
        meta = {"sizes": sizes, "activation": self.net.activation, "dataset": self.cfg["dataset"],
                "batchnorm": self.net.batchnorm, "dropout": self.net.dropout,
                "normalize": self.cfg["data"]["normalize"], "dtype": self.dtype.name,
                "iteration": self.state.iteration,
                "metrics": self.state.rows[-1] if self.state.rows else {},
                "config": self.cfg}
        if self.selected_on is not None:  # best.npz is chosen on it
            meta["selected_on"] = self.selected_on
        meta["bpnet_version"] = __version__
        meta["kind"] = "final" if final else "best"
        return meta

    def save_weights(self, path, final):
        if self.run_dir is None:
            return
        params = {k: v.copy() for k, v in self.net.state_arrays().items()}
        self._save(save_weights, path, params, self.meta(final))

    def write_metrics(self):
        if self.run_dir is None:
            return
        buf = io.StringIO()
        w = csv.DictWriter(buf, METRIC_COLUMNS, lineterminator="\n")
        w.writeheader()
        for row in self.state.rows:
            w.writerow({k: _fmt(row.get(k)) for k in METRIC_COLUMNS})
        self._save(atomic_write_text, self.run_dir / "metrics.csv", buf.getvalue())

    def save_checkpoint(self):
        if self.run_dir is None:
            return
        arrays = {k: v.copy() for k, v in self.net.state_arrays().items()}
        opt_state = {k: v.copy() for k, v in self.opt.state.items()}
        self._save(write_checkpoint, self.run_dir / "checkpoint.npz", arrays, opt_state,
                   self.opt.step, copy.deepcopy(self.state), self.total)
        self._ckpt_it = self.state.iteration

    def load_checkpoint(self):
        path = self.run_dir / "checkpoint.npz"
        shapes = {k: v.shape for k, v in self.net.state_arrays().items()}
        params, opt_state, opt_step, state, total = read_checkpoint(
            path, shapes, self.net.flat_params.shape)
        try:
            self.net.set_params(params)
        except (KeyError, ValueError) as e:
            raise WeightsError(f"{path}: not a usable checkpoint "
                               f"({type(e).__name__}: {clip(e)})") from None
        self.opt.state = {k: v.copy() for k, v in opt_state.items()}
        self.opt.step, self.state = opt_step, state
        self._ckpt_it = self.state.iteration
        if total != self.total:
            raise WeightsError(f"{path}: checkpoint is for {total} iterations, the config "
                               f"asks for {self.total}")


def _fmt(v):
    if v is None:
        return ""
    return f"{v:.6g}" if isinstance(v, float) else str(v)

