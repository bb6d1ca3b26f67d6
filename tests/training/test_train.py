"""The training loop as a library: determinism, resume, NaN stop, early stopping, optimizers."""

import csv
import json
import threading

import numpy as np
import pytest
from toy import run, toy_cfg, toy_data

from bpnet.nn.optim import SGD, AdaGrad, Adam, Momentum, learning_rate
from bpnet.training.batches import BatchStream, Data, Split, split_validation
from bpnet.training.sources import load_config
from bpnet.training.trainer import Progress, Trainer, TrainingDiverged, TrainingInterrupted
from bpnet.training.weights import load_npz, load_weights


class StopAt(Progress):
    """Requests a stop, like a signal handler, once ``at`` iterations are done."""

    def __init__(self, trainer_stop, at):
        self.stop, self.at = trainer_stop, at

    def step(self, iteration, loss):
        if iteration == self.at:
            self.stop.requested = "SIGINT"


def params_of(path):
    return load_weights(path)[0]


def test_learns_and_writes_a_complete_run_dir(tmp_path):
    data = toy_data()
    result = run(toy_cfg(tmp_path), data, tmp_path / "run")
    assert result["test_acc"] > 0.9 and result["val_acc"] > 0.9
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"weights.npz", "best.npz", "checkpoint.npz", "metrics.csv"} <= files
    assert not [f for f in files if f.endswith(".tmp")]
    lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert lines[0].split(",") == [
        "epoch",
        "iteration",
        "lr",
        "train_loss",
        "train_acc",
        "train_penalty",
        "val_loss",
        "val_acc",
        "test_loss",
        "test_acc",
        "elapsed",
    ]
    assert len(lines) == 1 + 3  # one row per epoch
    _, meta = load_weights(tmp_path / "run" / "weights.npz")
    assert meta["sizes"] == [784, 16, 10] and meta["dataset"] == "mnist"
    assert meta["metrics"]["test_acc"] == result["test_acc"]
    assert meta["config"]["train"]["epochs"] == 3


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adagrad", "adam"])
def test_same_seed_gives_bit_identical_weights(tmp_path, optimizer):
    data = toy_data()
    cfg = toy_cfg(
        tmp_path,
        **{"train.optimizer": optimizer, "train.schedule": "cosine", "train.weight_decay": 1e-3},
    )
    run(cfg, data, tmp_path / "a")
    run(cfg, data, tmp_path / "b")
    a, b = params_of(tmp_path / "a" / "weights.npz"), params_of(tmp_path / "b" / "weights.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    other = toy_cfg(tmp_path, **{"train.optimizer": optimizer, "train.seed": 1})
    run(other, data, tmp_path / "c")
    assert not np.array_equal(a["W1"], params_of(tmp_path / "c" / "weights.npz")["W1"])


@pytest.mark.parametrize("stop_at", [5, 15, 16, 30])  # mid-epoch, epoch ends (16 per epoch)
def test_resume_equals_uninterrupted_run(tmp_path, stop_at):
    data = toy_data()
    cfg = toy_cfg(
        tmp_path, **{"train.optimizer": "adam", "train.lr": 0.01, "train.schedule": "cosine"}
    )
    full = run(cfg, data, tmp_path / "full")
    run_dir = tmp_path / "cut"
    run_dir.mkdir()
    trainer = Trainer(cfg, data, run_dir)
    trainer.progress = StopAt(trainer.stop, stop_at)
    with pytest.raises(TrainingInterrupted, match="resume with: bpnet train --resume") as exc:
        trainer.run()
    assert exc.value.exit_code == 130
    resumed = Trainer(cfg, data, run_dir)
    resumed.load_checkpoint()
    assert resumed.state.iteration == stop_at
    result = resumed.run()
    a, b = params_of(tmp_path / "full" / "weights.npz"), params_of(run_dir / "weights.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert result["test_acc"] == full["test_acc"] and result["train_loss"] == full["train_loss"]
    assert (tmp_path / "full" / "metrics.csv").read_text().count("\n") == (
        run_dir / "metrics.csv"
    ).read_text().count("\n")


def test_train_step_alone_trains_the_weights_the_loop_trains(tmp_path):
    """The step reads on its own: fed the run's batches in order, ``train_step`` gives the
    weights of the whole loop (evaluations, saves and all), and the schedule's learning rate of
    each iteration; with schedule none there is no schedule and lr stays train.lr."""
    from concurrent.futures import ThreadPoolExecutor

    data = toy_data()
    cfg = toy_cfg(
        tmp_path,
        **{
            "train.optimizer": "adam",
            "train.lr": 0.01,
            "train.schedule": "cosine",
            "model.dropout": 0.2,
            "train.weight_decay": 1e-3,
        },
    )
    run(cfg, data, tmp_path / "loop")
    trainer = Trainer(cfg, data, None)
    per_epoch = trainer.iters_per_epoch
    with ThreadPoolExecutor(1) as pool:
        batches = BatchStream(
            data.train.x,
            data.train.t,
            trainer.seed,
            True,
            trainer.batch_size,
            trainer.scale,
            trainer.dtype,
            pool,
        )
        for i in range(trainer.total):
            loss = trainer.train_step(*batches.batch(i // per_epoch, i % per_epoch))
            assert trainer.state.iteration == i + 1 and loss == trainer.net.cross_entropy
            assert trainer.opt.lr == learning_rate("cosine", 0.01, i, trainer.total, per_epoch)
    a, b = params_of(tmp_path / "loop" / "weights.npz"), trainer.net.state_arrays()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    plain = Trainer(toy_cfg(tmp_path), data, None)
    assert plain.schedule() is None and plain.opt.lr == 0.05


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    data = toy_data()
    cfg = toy_cfg(tmp_path, **{"train.lr": 1e6, "train.optimizer": "sgd"})
    run_dir = tmp_path / "nan"
    run_dir.mkdir()
    with (
        np.errstate(all="ignore"),
        pytest.raises(TrainingDiverged, match="training diverged: loss is"),
    ):
        Trainer(cfg, data, run_dir).run()
    ckpt = load_npz(run_dir / "checkpoint.npz")
    params = [v for k, v in ckpt.items() if k.startswith("param.")]
    assert params and all(np.all(np.isfinite(p)) for p in params)
    assert not (run_dir / "weights.npz").exists()


def test_early_stopping_stops_after_patience(tmp_path):
    data = toy_data()
    cfg = toy_cfg(
        tmp_path,
        **{
            "train.lr": 1e-12,
            "train.epochs": 20,
            "early_stopping.patience": 2,
            "early_stopping.min_delta": 0.01,
        },
    )
    messages = []

    class Log(Progress):
        def message(self, text):
            messages.append(text)

    result = run(cfg, data, tmp_path / "es", Log())
    assert result["stopped_early"] and result["iteration"] == 3 * 16
    assert any("early stop" in m for m in messages)
    _, meta = load_weights(tmp_path / "es" / "best.npz")
    assert meta["iteration"] == 16 and meta["selected_on"] == "val"


def test_iterations_count_across_epochs_and_end_with_an_evaluation(tmp_path):
    data = toy_data()
    cfg = toy_cfg(tmp_path, **{"train.iterations": 40})
    result = run(cfg, data, tmp_path / "it")
    rows = (tmp_path / "it" / "metrics.csv").read_text().splitlines()[1:]
    assert [r.split(",")[1] for r in rows] == ["16", "32", "40"]
    assert result["iteration"] == 40 and result["epoch"] == pytest.approx(2.5)


def test_without_validation_nothing_is_selected_on_test(tmp_path):
    data = toy_data()
    data = Data(
        Split(
            np.concatenate([data.train.x, data.val.x]), np.concatenate([data.train.t, data.val.t])
        ),
        None,
        data.test,
    )
    cfg = toy_cfg(tmp_path, **{"data.validation": 0})
    run(cfg, data, tmp_path / "nv")
    assert not (tmp_path / "nv" / "best.npz").exists()
    _, meta = load_weights(tmp_path / "nv" / "weights.npz")
    assert "selected_on" not in meta
    rows = list(csv.DictReader(open(tmp_path / "nv" / "metrics.csv")))
    assert len(rows) == 3 and all(r["val_loss"] == r["val_acc"] == "" for r in rows)
    assert all(float(r["test_acc"]) > 0.5 for r in rows)


def test_with_validation_best_is_selected_on_validation(tmp_path):
    data = toy_data()
    # a validation split of one class only: its accuracy peaks at another epoch than the test's
    val = Split(data.val.x[data.val.t == 3], data.val.t[data.val.t == 3])
    run(toy_cfg(tmp_path, **{"train.lr": 0.002}), Data(data.train, val, data.test), tmp_path / "v")
    rows = list(csv.DictReader(open(tmp_path / "v" / "metrics.csv")))
    _, meta = load_weights(tmp_path / "v" / "best.npz")
    best_row = max(rows, key=lambda r: float(r["val_acc"]))  # the first of equals, as selected
    assert meta["selected_on"] == "val" and meta["iteration"] == int(best_row["iteration"])
    assert meta["iteration"] != int(max(rows, key=lambda r: float(r["test_acc"]))["iteration"])


def test_train_loss_is_cross_entropy_and_the_penalty_its_own_column(tmp_path):
    """With weight decay the objective is cross-entropy + ½λΣW²; metrics.csv reports the same
    quantity (cross-entropy) for every split and the penalty apart. With a learning rate too
    small to move the weights, train and test cross-entropy agree and the penalty is exactly
    the one of the (unchanged) weights."""
    data = toy_data()
    cfg = toy_cfg(
        tmp_path, **{"train.weight_decay": 0.05, "train.lr": 1e-9, "model.weight_init": "he"}
    )
    result = run(cfg, data, tmp_path / "wd")
    params, _ = load_weights(tmp_path / "wd" / "weights.npz")
    penalty = (
        0.5 * 0.05 * sum(float(np.sum(params[k].astype(np.float64) ** 2)) for k in ("W1", "W2"))
    )
    assert penalty > 0.5  # large beside the difference of two cross-entropies below
    assert result["train_penalty"] == pytest.approx(penalty, rel=1e-4)
    assert abs(result["train_loss"] - result["test_loss"]) < 0.1
    assert abs(result["train_loss"] - result["val_loss"]) < 0.1
    rows = list(csv.DictReader(open(tmp_path / "wd" / "metrics.csv")))
    assert float(rows[-1]["train_penalty"]) == pytest.approx(penalty, rel=1e-4)
    assert float(rows[-1]["train_loss"]) == pytest.approx(result["train_loss"], rel=1e-5)
    plain = run(toy_cfg(tmp_path), data, tmp_path / "plain")
    assert plain["train_penalty"] == 0.0


def test_a_library_run_writes_its_config_and_resumes_like_a_cli_run(tmp_path):
    data = toy_data()
    cfg = toy_cfg(tmp_path / "elsewhere", **{"train.optimizer": "momentum"})
    run_dir = tmp_path / "lib"
    trainer = Trainer(cfg, data, run_dir)
    trainer.progress = StopAt(trainer.stop, 20)
    with pytest.raises(TrainingInterrupted):
        trainer.run()
    saved = load_config(run_dir / "config.yaml")
    assert saved["output"]["dir"] == str(run_dir)  # the run's own directory, not cfg's
    assert {k: v for k, v in saved.items() if k != "output"} == {
        k: v for k, v in cfg.items() if k != "output"
    }
    resumed = Trainer(saved, data, run_dir)  # what `bpnet train --resume` builds from it
    resumed.load_checkpoint()
    resumed.run()
    run(cfg, data, tmp_path / "whole")
    a, b = params_of(tmp_path / "whole" / "weights.npz"), params_of(run_dir / "weights.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_optimizer_steps_match_their_formulas():
    rng = np.random.default_rng(0)
    p0, g0 = rng.standard_normal(5), rng.standard_normal(5)

    def step(opt, times=2):
        p = {"w": p0.copy()}
        for _ in range(times):
            opt.update(p, {"w": g0.copy()})
        return p["w"]

    np.testing.assert_allclose(step(SGD(0.1)), p0 - 0.2 * g0)
    # momentum: v1 = -lr g, v2 = m v1 - lr g
    np.testing.assert_allclose(step(Momentum(0.1, 0.9)), p0 - 0.1 * g0 + (-0.09 * g0 - 0.1 * g0))
    h = g0**2
    expected = p0 - 0.1 * g0 / (np.sqrt(h) + 1e-8) - 0.1 * g0 / (np.sqrt(2 * h) + 1e-8)
    np.testing.assert_allclose(step(AdaGrad(0.1, 1e-8)), expected)
    m, v, p = np.zeros(5), np.zeros(5), p0.copy()
    for t in (1, 2):
        m = 0.9 * m + 0.1 * g0
        v = 0.999 * v + 0.001 * g0**2
        p = p - 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    np.testing.assert_allclose(step(Adam(0.01)), p, rtol=1e-6)


def test_learning_rate_schedules():
    assert learning_rate("none", 0.1, 500, 1000, 100) == 0.1
    assert learning_rate("step", 0.1, 199, 1000, 100, step_epochs=2, gamma=0.5) == 0.1
    assert learning_rate("step", 0.1, 200, 1000, 100, step_epochs=2, gamma=0.5) == 0.05
    assert learning_rate("cosine", 0.1, 0, 1000, 100) == 0.1
    assert learning_rate("cosine", 0.1, 500, 1000, 100, min_lr=0.02) == pytest.approx(0.06)
    assert learning_rate("cosine", 0.1, 1000, 1000, 100) == pytest.approx(0.0)


def test_checkpoint_holds_parameters_optimizer_state_and_counters(tmp_path):
    data = toy_data()
    run(toy_cfg(tmp_path, **{"train.optimizer": "adam"}), data, tmp_path / "ck")
    ckpt = load_npz(tmp_path / "ck" / "checkpoint.npz")
    state = json.loads(str(ckpt["state"][()]))
    assert state["state"]["iteration"] == 48 and state["opt_step"] == 48
    assert {k for k in ckpt if k.startswith("param.")} == {
        "param.W1",
        "param.b1",
        "param.W2",
        "param.b2",
    }
    # Adam's moments, kept for all parameters at once (the net's flat parameter vector)
    assert {k for k in ckpt if k.startswith("opt.")} == {"opt.m.all", "opt.v.all"}
    assert ckpt["opt.m.all"].shape == (784 * 16 + 16 + 16 * 10 + 10,)


@pytest.mark.parametrize("n,bs,chunk", [(50, 7, 3), (50, 10, 50), (48, 16, 2), (5, 8, 4)])
def test_batches_follow_each_epochs_permutation_fixed_by_seed_and_epoch(n, bs, chunk):
    x = np.arange(n, dtype=np.uint8).reshape(n, 1)
    t = np.arange(n)
    per_epoch = -(-n // bs)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        a = BatchStream(x, t, 3, True, bs, 0.5, np.float32, pool, chunk)
        epochs = [
            np.concatenate([a.batch(e, p)[1].copy() for p in range(per_epoch)]) for e in range(3)
        ]  # copies: a batch is a view into a reused buffer
        b = BatchStream(x, t, 3, True, bs, 0.5, np.float32, pool, chunk)
        xb, tb, _ = b.batch(2, per_epoch - 1)  # straight to the last batch of epoch 2, as a resume
        assert np.array_equal(tb, epochs[2][(per_epoch - 1) * bs :])
        assert np.array_equal(xb[:, 0], 0.5 * tb) and xb.dtype == np.float32  # converted, scaled
        for e in range(3):
            assert sorted(epochs[e]) == list(range(n))  # every image once per epoch
            for p in range(per_epoch):
                xb, tb, _ = a.batch(e, p)
                assert np.array_equal(xb[:, 0], 0.5 * tb)  # images travel with their labels
    assert not np.array_equal(epochs[0], epochs[1])
    with ThreadPoolExecutor(1) as pool:
        fixed = BatchStream(x, t, 3, False, bs, 1.0, np.float32, pool, chunk)
        assert np.array_equal(fixed.batch(4, 0)[1], t[:bs])


def blank_edged(n, seed=0):
    """uint8 'images' of 64 pixels whose first 16 are blank in every image, and pixel 16 lit
    in image 0 only: batches without image 0 have 17 blank columns, with it 16."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 255, (n, 64)).astype(np.uint8)
    x[:, :17] = 0
    x[0, 16] = 7
    return x, np.arange(n)


@pytest.mark.parametrize("augmented", [False, True])
def test_batches_hold_only_the_columns_not_blank_in_every_image(augmented):
    x, t = blank_edged(40)
    x[1, :10] = 9  # image 1 lights 10 of them: batches with it keep fewer than 64/8 blank
    augment = (lambda xb, iteration: xb * 2.0) if augmented else None
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        full = BatchStream(x, t, 5, True, 8, 0.5, np.float32, pool, 3, augment=augment)
        part = BatchStream(
            x, t, 5, True, 8, 0.5, np.float32, pool, 3, augment=augment, columns=True
        )
        seen = set()
        for e in range(2):
            for p in range(5):
                xf, tf, no_cols = (a.copy() if a is not None else None for a in full.batch(e, p))
                xp, tp, cols = part.batch(e, p)
                assert no_cols is None and np.array_equal(tp, tf)
                if 1 in tf:  # too few blank columns to be worth it: the whole batch
                    assert cols is None and np.array_equal(xp, xf)
                    seen.add("whole")
                    continue
                blank = 17 if 0 not in tf else 16
                assert np.array_equal(cols, np.arange(blank, 64))
                assert np.array_equal(xp, xf[:, cols]) and xp.flags.c_contiguous
                assert not np.delete(xf, cols, axis=1).any()
                seen.add(blank)
    assert seen == {"whole", 16, 17}


def test_training_on_the_non_blank_columns_equals_training_on_whole_images(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    t = rng.integers(0, 10, 600)
    x = rng.integers(1, 40, (600, 784)).astype(np.uint8)
    x[:, :200] = x[:, -100:] = 0  # blank in every image: the first and last rows of pixels
    for c in range(10):  # class c lights a block of its own
        x[t == c, 220 + 45 * c : 250 + 45 * c] += 150
    data = Data(*split_validation(x, t, 100), Split(x[:200], t[:200]))
    cfg = toy_cfg(tmp_path, **{"train.dtype": "float64", "model.hidden": "[100]"})
    found, blank_free = [], BatchStream._blank_free
    monkeypatch.setattr(
        BatchStream, "_blank_free", lambda self, xb: found.append(blank_free(self, xb)) or found[-1]
    )
    part = run(cfg, data, tmp_path / "part")
    assert sum(c is not None and len(c) < 600 for c in found) > 20  # blank-free batches ran
    found.clear()
    run(toy_cfg(tmp_path, **{"model.hidden": "[99]"}), data, tmp_path / "narrow")
    assert found and all(c is None for c in found)  # narrower: whole images (COLUMNS_MIN_WIDTH)
    found.clear()
    run(
        toy_cfg(tmp_path, **{"model.hidden": "[100]", "augment.shift": 1}),
        data,
        tmp_path / "augmented",
    )
    assert found and all(c is None for c in found)  # nor with augmentation
    b = params_of(tmp_path / "part" / "weights.npz")
    monkeypatch.setattr(BatchStream, "_blank_free", lambda self, xb: None)
    whole = run(cfg, data, tmp_path / "whole")
    a = params_of(tmp_path / "whole" / "weights.npz")
    assert part["val_acc"] == whole["val_acc"] > 0.9
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("n,bs,chunk", [(50, 7, 3), (48, 16, 2)])
def test_batches_are_augmented_by_their_iteration_on_the_preparing_thread(n, bs, chunk):
    x = np.arange(n, dtype=np.uint8).reshape(n, 1)
    t = np.arange(n)
    per_epoch = -(-n // bs)
    calls = []

    def augment(xb, iteration):  # stands for the seeded augmenter: a function of the iteration
        calls.append(threading.current_thread().name)
        return xb + 1000.0 * iteration

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="prep") as pool:
        a = BatchStream(x, t, 3, True, bs, 1.0, np.float32, pool, chunk, augment=augment)
        for e in range(2):
            for p in range(per_epoch):
                xb, tb, _ = a.batch(e, p)
                assert np.array_equal(xb[:, 0], tb + 1000.0 * (e * per_epoch + p))
        b = BatchStream(x, t, 3, True, bs, 1.0, np.float32, pool, chunk, augment=augment)
        xb, tb, _ = b.batch(1, per_epoch - 1)  # a resume's jump: the same iteration's augmentation
        assert np.array_equal(xb[:, 0], tb + 1000.0 * (2 * per_epoch - 1))
    assert any(name.startswith("prep") for name in calls)  # most chunks on the other thread


def test_augmented_runs_are_reproducible_and_resume_bit_identically(tmp_path):
    data = toy_data()
    cfg = toy_cfg(
        tmp_path, **{"augment.shift": 2, "augment.rotate": 10.0, "augment.elastic_alpha": 8.0}
    )
    plain = run(toy_cfg(tmp_path), data, tmp_path / "plain")
    full = run(cfg, data, tmp_path / "full")
    run(cfg, data, tmp_path / "again")
    a, b = (
        params_of(tmp_path / "full" / "weights.npz"),
        params_of(tmp_path / "again" / "weights.npz"),
    )
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert full["train_loss"] != plain["train_loss"]  # the distortions did reach the batches
    run_dir = tmp_path / "cut"
    run_dir.mkdir()
    trainer = Trainer(cfg, data, run_dir)
    trainer.progress = StopAt(trainer.stop, 21)
    with pytest.raises(TrainingInterrupted):
        trainer.run()
    resumed = Trainer(cfg, data, run_dir)
    resumed.load_checkpoint()
    resumed.run()
    c = params_of(run_dir / "weights.npz")
    assert all(np.array_equal(a[k], c[k]) for k in a)


def test_new_rules_match_their_formulas_and_no_optimizer_writes_into_grads():
    from bpnet.nn.optim import OPTIMIZERS, Nesterov, RMSprop

    rng = np.random.default_rng(0)
    p0, g0 = rng.standard_normal(5), rng.standard_normal(5)
    p, v = p0.copy(), np.zeros(5)
    for _ in range(2):  # the book's Nesterov form
        p = p + 0.81 * v - 1.9 * 0.1 * g0
        v = 0.9 * v - 0.1 * g0
    q, g = {"w": p0.copy()}, {"w": g0.copy()}
    opt = Nesterov(0.1, 0.9)
    opt.update(q, g), opt.update(q, g)
    np.testing.assert_allclose(q["w"], p)
    p, h = p0.copy(), np.zeros(5)
    for _ in range(2):
        h = 0.99 * h + 0.01 * g0**2
        p = p - 0.1 * g0 / (np.sqrt(h) + 1e-7)
    q = {"w": p0.copy()}
    opt = RMSprop(0.1, 0.99, 1e-7)
    opt.update(q, g), opt.update(q, g)
    np.testing.assert_allclose(q["w"], p)
    for name, cls in OPTIMIZERS.items():
        grads = {"w": g0.copy(), "x": 3.0}
        params = {"w": p0.copy(), "x": 1.0}  # a plain number is replaced, as in the book's demo
        cls().update(params, grads)
        assert np.array_equal(grads["w"], g0) and grads["x"] == 3.0, name
        assert not np.array_equal(params["w"], p0) and params["x"] < 1.0, name


@pytest.mark.parametrize("stop_at", [7, 16])
def test_batchnorm_dropout_run_resumes_bit_identically(tmp_path, stop_at):
    data = toy_data()
    cfg = toy_cfg(
        tmp_path,
        **{
            "model.hidden": "[16, 12]",
            "model.batchnorm": "true",
            "model.dropout": 0.2,
            "train.optimizer": "rmsprop",
            "train.lr": 0.01,
        },
    )
    full = run(cfg, data, tmp_path / "full")
    assert full["test_acc"] > 0.9
    run_dir = tmp_path / "cut"
    run_dir.mkdir()
    trainer = Trainer(cfg, data, run_dir)
    trainer.progress = StopAt(trainer.stop, stop_at)
    with pytest.raises(TrainingInterrupted):
        trainer.run()
    resumed = Trainer(cfg, data, run_dir)
    resumed.load_checkpoint()
    assert resumed.run()["test_acc"] == full["test_acc"]
    a, b = load_weights(tmp_path / "full" / "weights.npz"), load_weights(run_dir / "weights.npz")
    assert set(a[0]) == {
        "W1",
        "b1",
        "W2",
        "b2",
        "W3",
        "b3",
        "gamma1",
        "beta1",
        "gamma2",
        "beta2",
        "running_mean1",
        "running_var1",
        "running_mean2",
        "running_var2",
    }
    assert all(np.array_equal(a[0][k], b[0][k]) for k in a[0])
    assert a[1]["batchnorm"] is True and a[1]["dropout"] == 0.2
    assert np.all(a[0]["running_var1"] > 0) and not np.all(a[0]["gamma1"] == 1)
    # a different seed draws different dropout masks
    other = run(
        toy_cfg(
            tmp_path,
            **{
                "model.hidden": "[16, 12]",
                "model.batchnorm": "true",
                "model.dropout": 0.2,
                "train.optimizer": "rmsprop",
                "train.lr": 0.01,
                "train.shuffle": "false",
            },
        ),
        data,
        tmp_path / "o1",
    )
    again = run(
        toy_cfg(
            tmp_path,
            **{
                "model.hidden": "[16, 12]",
                "model.dropout": 0.2,
                "model.batchnorm": "true",
                "train.optimizer": "rmsprop",
                "train.lr": 0.01,
                "train.shuffle": "false",
                "train.seed": 3,
            },
        ),
        data,
        tmp_path / "o2",
    )
    assert other["train_loss"] != again["train_loss"]


def test_evaluation_uses_inference_mode(tmp_path):
    """The test accuracy of a dropout net equals a fresh inference-mode evaluation of its
    weights."""
    from bpnet.nn.evaluate import evaluate
    from bpnet.training.weights import network_from_weights

    data = toy_data()
    cfg = toy_cfg(tmp_path, **{"model.dropout": 0.5, "model.batchnorm": "true"})
    result = run(cfg, data, tmp_path / "r")
    net, meta = network_from_weights(tmp_path / "r" / "weights.npz")
    assert net.training is False and net.batchnorm and net.dropout == 0.5
    _, acc, _, _ = evaluate(net, data.test.x, data.test.t)
    assert acc == result["test_acc"]
    x = (data.test.x / 255).astype(np.float32)
    assert net.loss(x, data.test.t, train_flg=True) != net.loss(x, data.test.t, train_flg=False)


def test_checkpoint_with_a_wrong_batchnorm_buffer_is_refused(tmp_path):
    from bpnet.training.weights import WeightsError, save_npz

    data = toy_data()
    cfg = toy_cfg(tmp_path, **{"model.batchnorm": "true", "train.epochs": 1})
    run(cfg, data, tmp_path / "r")
    arrays = load_npz(tmp_path / "r" / "checkpoint.npz")
    arrays["param.running_var1"] = np.ones(5, dtype=np.float32)
    save_npz(tmp_path / "r" / "checkpoint.npz", arrays)
    with pytest.raises(WeightsError, match=r"running_var1. has shape \(5,\), expected \(16,\)"):
        Trainer(cfg, data, tmp_path / "r").load_checkpoint()


def test_onecycle_rises_over_the_warmup_then_falls_by_a_cosine():
    lr = [learning_rate("onecycle", 1.0, i, 100, 10, min_lr=0.1, warmup=0.2) for i in range(101)]
    assert lr[0] == pytest.approx(0.1) and lr[10] == pytest.approx(0.55)
    assert lr[20] == pytest.approx(1.0) and max(lr) == pytest.approx(1.0)
    assert lr[60] == pytest.approx(0.55) and lr[100] == pytest.approx(0.1)
    assert all(a < b for a, b in zip(lr[:20], lr[1:21])) and all(
        a > b for a, b in zip(lr[20:], lr[21:])
    )
