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
When it may write there (a new run, a replacement, a resumed run) is bpnet.training.rundir's
policy: a folder holding a run is refused unless ``replace=True`` (``bpnet train --force``), and
a replacement is swapped in only once the new run has started.

The parts: ``train_step`` is one mini-batch, ``schedule`` the learning rate of an iteration,
``_epoch_ended``/``_finish`` the cadence of evaluations, saves and stops, ``_loop`` the driver.
The loop takes progress reporting as an injected object, so it runs without any UI.
"""

from __future__ import annotations

import copy
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bpnet import __version__
from bpnet.base.files import atomic_write_text
from bpnet.base.text import clip
from bpnet.data.augment import Augmenter
from bpnet.errors import BpnetError, InputError
from bpnet.nn.evaluate import evaluate, input_scale, to_input
from bpnet.nn.optim import learning_rate, make_optimizer
from bpnet.nn.threads import use as use_threads
from bpnet.training.batches import (
    AUGMENT_STREAM,
    COLUMNS_MIN_WIDTH,
    DROPOUT_STREAM,
    INIT_STREAM,
    BatchStream,
    seeded_rng,
)
from bpnet.training.checkpoint import State, read_checkpoint, write_checkpoint
from bpnet.training.config import build_network, dump_config
from bpnet.training.metrics import metrics_csv
from bpnet.training.rundir import RunDir
from bpnet.training.weights import WeightsError, save_weights

# A cross-entropy this many times the first iteration's means the weights have blown up.
DIVERGENCE_FACTOR = 1000


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
    in ``state.rows`` (a sweep's trials). A ``run_dir`` that holds a run is refused
    (rundir.RunExists) unless ``replace`` (as ``bpnet train --force``) or the run was resumed
    (``load_checkpoint``)."""

    def __init__(self, cfg, data, run_dir, progress=None, stop=None, replace=False):
        self.run_dir, self.data = None if run_dir is None else Path(run_dir), data
        if self.run_dir is not None:
            cfg = {**cfg, "output": {**cfg["output"], "dir": str(self.run_dir)}}
        self.cfg = cfg
        self.replace = replace  # run_dir may hold an old run, replaced once this one has started
        self.dir = None if run_dir is None else RunDir(self.run_dir, replace)
        self.progress, self.stop = progress or Progress(), stop or StopFlag()
        tr = cfg["train"]
        self.seed, self.dtype = tr["seed"], np.dtype(tr["dtype"])
        self.scale = input_scale(cfg["data"]["normalize"])
        self.batch_size = tr["batch_size"]
        self.iters_per_epoch = math.ceil(len(data.train) / self.batch_size)
        self.total = tr["iterations"] or tr["epochs"] * self.iters_per_epoch
        self.lr_at = self.schedule()
        self.net = build_network(cfg, rng=seeded_rng(tr["seed"], INIT_STREAM))
        rule = ("optimizer", "lr", "momentum", "beta1", "beta2", "eps", "decay_rate")
        self.opt = make_optimizer(*(tr[k] for k in rule))
        # the optimizer updates every parameter at once, from the gradients' one flat array
        self.flat, self.grads = {"all": self.net.flat_params}, {"all": self.net.flat_grads}
        self.augmenter = Augmenter.from_config(cfg["augment"])
        # Validation and test inputs, converted once rather than at every evaluation.
        self.eval_inputs = {
            name: (to_input(split.x, self.scale, self.dtype), split.t)
            for name, split in (("val", data.val), ("test", data.test))
            if split is not None
        }
        self.state = State()
        self.resumed = False  # load_checkpoint: continue the run in place
        self.extended_from = None  # load_checkpoint(extend=True): the run's length before
        self._ckpt_it = 0  # the iteration of the newest checkpoint written
        # best.npz is chosen on validation accuracy; without validation images nothing is
        # selected (choosing on the test set would make its accuracy an optimistic estimate).
        self.selected_on = "val" if data.val is not None else None

    # -- the schedule ---------------------------------------------------------------
    def schedule(self, total=None):
        """The learning rate of an iteration, ``lr_at(iteration)``, under train.schedule over
        ``total`` iterations (default: this run's); None for "none" (the optimizer keeps
        train.lr). A run given a new length follows the schedule of its new total from where
        it is: ``step`` (a function of the epoch alone) is unchanged, ``cosine`` and
        ``onecycle`` are stretched over the new total."""
        tr = self.cfg["train"]
        if tr["schedule"] == "none":
            return None
        head = (tr["schedule"], tr["lr"])
        tail = (total or self.total, self.iters_per_epoch, tr["step_epochs"], tr["gamma"])
        return lambda iteration: learning_rate(*head, iteration, *tail, tr["min_lr"], tr["warmup"])

    # -- one step -----------------------------------------------------------------
    def train_step(self, x, t, cols=None):
        """One mini-batch of iteration ``state.iteration``: its learning rate and dropout
        masks, the loss (TrainingDiverged past the limit), backward, the update, then the
        counters and running sums. Returns the batch's cross-entropy."""
        st, net = self.state, self.net
        if self.lr_at is not None:
            self.opt.lr = self.lr_at(st.iteration)
        if net.dropout:
            net.dropout_rng = seeded_rng(self.seed, DROPOUT_STREAM, st.iteration)
        loss = net.loss(
            x, t, train_flg=True, cols=cols
        )  # the objective: cross-entropy + weight-decay penalty
        if st.loss_limit is None:
            st.loss_limit = DIVERGENCE_FACTOR * max(loss, 1.0)
        if not loss <= st.loss_limit:  # also true for NaN
            raise self._diverged(loss)
        st.correct += int(np.count_nonzero(net.last_layer.y.argmax(axis=1) == t))
        net.backward()
        self.opt.update(self.flat, self.grads)
        m = len(t)
        st.iteration += 1
        st.loss_sum += net.cross_entropy * m
        st.penalty_sum += (loss - net.cross_entropy) * m
        st.seen += m
        return net.cross_entropy

    def _diverged(self, loss):
        what = (
            f"{loss:.4g}, over {DIVERGENCE_FACTOR}x the first loss"
            if math.isfinite(loss)
            else str(loss)
        )
        return TrainingDiverged(
            f"training diverged: loss is {what} at iteration {self.state.iteration + 1} "
            f"(lr {self.opt.lr:g}); "
            + (
                f"stopped, the last good checkpoint is {self.dir.path / 'checkpoint.npz'} "
                f"(iteration {self._ckpt_it}); "
                if self.dir
                else ""
            )
            + "try a smaller train.lr"
        )

    # -- the run --------------------------------------------------------------------
    def run(self):
        """Train to the end (or an early stop); returns the last metrics row.

        Files are written by one background thread from snapshots, so saving overlaps
        training; every write has finished (or raised) when this returns or raises.
        """
        if self.dir is not None:
            self.dir.open(resume=self.resumed)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bpnet-save")
        self._batches = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bpnet-batches")
        self._pending = []
        try:
            with use_threads(self.cfg["train"]["threads"]):
                result = self._loop()
        except BaseException:
            self._flush(raise_errors=False)
            if self.dir is not None:
                self.dir.abandon()  # a replacement that never started: the old run stays
            raise
        finally:
            self._batches.shutdown(wait=True, cancel_futures=True)
        self._flush()
        return result

    def _loop(self):
        """The driver: a batch, a step, the progress hook, the epoch's end, a stop request."""
        st, total, per_epoch = self.state, self.total, self.iters_per_epoch
        batches = self._batch_stream()
        self._start()
        self._started = time.perf_counter() - st.elapsed
        step, report, stop = self.train_step, self.progress.step, self.stop
        stopped_early = False
        while st.iteration < total:
            pos = st.iteration - st.epoch * per_epoch
            x, t, cols = batches.batch(st.epoch, pos)
            loss = step(x, t, cols)
            report(st.iteration, loss)
            if pos + 1 == per_epoch and self._epoch_ended():
                stopped_early = True
                break
            if stop.requested and st.iteration < total:
                self._interrupted()
        return self._finish(stopped_early)

    def _batch_stream(self):
        tr, train = self.cfg["train"], self.data.train
        augment = self._augment if self.augmenter.active else None
        columns = (
            not hasattr(self.net, "layer_specs")  # a convolution reads every pixel
            and self.net.sizes[1] >= COLUMNS_MIN_WIDTH
            and not self.augmenter.active
        )
        return BatchStream(
            train.x,
            train.t,
            self.seed,
            tr["shuffle"],
            self.batch_size,
            self.scale,
            self.dtype,
            self._batches,
            augment=augment,
            columns=columns,
        )

    def _augment(self, x, iteration):
        """Batch ``x`` of ``iteration`` augmented (called from the batch-preparing thread)."""
        self.augmenter.rng = seeded_rng(self.seed, AUGMENT_STREAM, iteration)
        return self.augmenter(x)

    def _start(self):
        """A new run writes its config.yaml and first checkpoint (the last good state, even if
        the first step diverges), a run given a new length rewrites them; once they are on disk
        the run has started, and a replaced old run gives way to it."""
        if self.dir is not None:
            if self.state.iteration == 0 or self.extended_from is not None:
                self._save(atomic_write_text, self.dir.path / "config.yaml", dump_config(self.cfg))
                self.save_checkpoint()
            if self.dir.staged:
                self._wait()
                self.dir.started()
        self.progress.start(self.total, self.state.iteration, self.iters_per_epoch)

    # -- the cadence: when to evaluate, save and stop ------------------------------------
    def _clock(self):
        self.state.elapsed = time.perf_counter() - self._started

    def _epoch_ended(self):
        """Count the epoch; every eval.every epochs evaluate and save. True: stop early."""
        st = self.state
        st.epoch += 1
        if st.epoch % self.cfg["eval"]["every"]:
            return False
        self._clock()
        return self.evaluate_and_save()

    def _interrupted(self):
        """A stop was requested mid-run: save a checkpoint and say how to resume."""
        self._clock()
        self.save_checkpoint()
        raise TrainingInterrupted(
            f"interrupted by {self.stop.requested} at iteration {self.state.iteration} of "
            f"{self.total}; checkpoint saved; resume with: bpnet train --resume "
            f"{self.run_dir}",
            self.stop.requested,
        )

    def _finish(self, stopped_early):
        """The end (or an early stop): a last evaluation unless one was just made, the final
        weights and checkpoint; returns the last metrics row."""
        st = self.state
        self._clock()
        if not st.rows or st.rows[-1]["iteration"] != st.iteration:
            self.evaluate_and_save()
        self.save_weights(self.dir and self.dir.path / "weights.npz", final=True)
        self.save_checkpoint()
        return {"stopped_early": stopped_early, **st.rows[-1]}

    def evaluate_and_save(self):
        """Evaluate, append a metrics row, keep the best model (when there is a validation
        split); True when stopping early."""
        started = time.perf_counter()
        st = self.state
        seen = max(st.seen, 1)
        row = {
            "epoch": round(st.iteration / self.iters_per_epoch, 4),
            "iteration": st.iteration,
            "lr": self.opt.lr,
            "train_loss": st.loss_sum / seen,
            "train_acc": st.correct / seen,
            "train_penalty": st.penalty_sum / seen,
        }
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
                self.save_weights(self.dir and self.dir.path / "best.npz", final=False)
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
                f"evaluations (best {st.best:.4f} at iteration {st.best_iteration})"
            )
        return stop

    # -- files --------------------------------------------------------------------
    def _save(self, fn, *args):
        """Queue a write; a failure of an earlier one is raised here."""
        done = [f for f in self._pending if f.done()]
        self._pending = [f for f in self._pending if not f.done()]
        for f in done:
            f.result()
        self._pending.append(self._writer.submit(fn, *args))

    def _wait(self):
        """Every queued write done (or its error raised)."""
        pending, self._pending = self._pending, []
        for f in pending:
            f.result()

    def _flush(self, raise_errors=True):
        pending, self._pending = self._pending, []
        self._writer.shutdown(wait=True)
        errors = [e for e in (f.exception() for f in pending) if e is not None]
        if errors and raise_errors:
            raise errors[0]

    def meta(self, final):
        conv = hasattr(self.net, "layer_specs")
        meta = {
            "sizes": [self.net.input_size, self.net.output_size] if conv else self.net.sizes,
            "activation": getattr(self.net, "activation", "relu"),
            "dataset": self.cfg["dataset"],
            "batchnorm": getattr(self.net, "batchnorm", False),
            "dropout": getattr(self.net, "dropout", 0.0),
            "normalize": self.cfg["data"]["normalize"],
            "dtype": self.dtype.name,
            "iteration": self.state.iteration,
            "metrics": self.state.rows[-1] if self.state.rows else {},
            "config": self.cfg,
        }
        if conv:
            meta["layers"] = self.cfg["model"]["layers"]
            meta["input_shape"] = list(self.net.input_shape)
        if self.selected_on is not None:  # best.npz is chosen on it
            meta["selected_on"] = self.selected_on
        meta["bpnet_version"] = __version__
        meta["kind"] = "final" if final else "best"
        return meta

    def save_weights(self, path, final):
        if self.dir is None:
            return
        params = {k: v.copy() for k, v in self.net.state_arrays().items()}
        self._save(save_weights, path, params, self.meta(final))

    def write_metrics(self):
        if self.dir is None:
            return
        text = metrics_csv(self.state.rows)
        self._save(atomic_write_text, self.dir.path / "metrics.csv", text)

    def save_checkpoint(self):
        if self.dir is None:
            return
        arrays = {k: v.copy() for k, v in self.net.state_arrays().items()}
        opt_state = {k: v.copy() for k, v in self.opt.state.items()}
        self._save(
            write_checkpoint,
            self.dir.path / "checkpoint.npz",
            arrays,
            opt_state,
            self.opt.step,
            copy.deepcopy(self.state),
            self.total,
        )
        self._ckpt_it = self.state.iteration

    def load_checkpoint(self, extend=False):
        """Continue the run in ``run_dir`` from its checkpoint; ``run`` then writes in place.

        ``extend``: the config may give the run another length (``bpnet train --resume RUN
        --epochs N``), not behind the checkpoint; the run goes on to it under the schedule of
        the new total (see ``schedule``), ``extended_from`` holding the old one."""
        path = self.run_dir / "checkpoint.npz"
        shapes = {k: v.shape for k, v in self.net.state_arrays().items()}
        params, opt_state, opt_step, state, total = read_checkpoint(
            path, shapes, self.net.flat_params.shape
        )
        try:
            self.net.set_params(params)
        except (KeyError, ValueError) as e:
            raise WeightsError(
                f"{path}: not a usable checkpoint ({type(e).__name__}: {clip(e)})"
            ) from None
        self.opt.state = {k: v.copy() for k, v in opt_state.items()}
        self.opt.step, self.state = opt_step, state
        self._ckpt_it, self.resumed = self.state.iteration, True
        if total != self.total and not extend:
            raise WeightsError(
                f"{path}: checkpoint is for {total} iterations, the config asks for {self.total}"
            )
        if total != self.total:
            if self.total < state.iteration:
                raise InputError(
                    f"{self.run_dir} is at iteration {state.iteration} already: a length of "
                    f"{self.total} iterations ends before it; give a longer one to extend it"
                )
            self.extended_from = total
