"""What a sweep shows and how its file is checked: sweep.png has no blank half whatever the
space (the shipped smoke sweep run for real, and each kind of space), its title counts the
curves it draws; a 40,000-value choice is checked without a config copied per value, long
list choices keep labels of their own, and a choice given twice is refused."""

from __future__ import annotations

import copy
import random
import subprocess

import pytest
from sweeprun import optuna  # skips this module when Optuna is missing

pytest.importorskip("matplotlib", reason="pip install 'bpnet[plot]'")


def test_the_smoke_sweeps_picture_has_no_blank_half(bpnet_exe, tmp_path, mnist_session_dir):
    from PIL import Image

    out = tmp_path / "smoke"
    r = subprocess.run(
        [bpnet_exe, "sweep", "smoke", "--jobs", "2", "--out", str(out), "--quiet"]
        + ["--data-dir", str(mnist_session_dir), "--offline"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    image = Image.open(out / "sweep.png").convert("L")
    w, h = image.size
    for half in (image.crop((0, 0, w // 2, h)), image.crop((w // 2, 0, w, h))):
        inked = sum(half.histogram()[:200]) / (half.size[0] * half.size[1])  # not white
        assert inked > 0.01, inked


LR = "train.lr: {log_uniform: [0.01, 0.5]}"
SPACES = {
    "two-numbers": f"{LR}\n  train.weight_decay: {{uniform: [0, 0.001]}}",
    "number-and-choice": f"{LR}\n  model.hidden: {{choice: [[5], [10]]}}",
    "choices": "model.hidden: {choice: [[5], [10], [5, 5]]}\n"
    "  model.activation: {choice: [relu, sigmoid]}",
    "nothing": "{}",
}


@pytest.mark.parametrize("space", SPACES, ids=list(SPACES))
def test_each_kind_of_space_fills_both_panels_and_the_title_counts_the_curves(
    tmp_path, monkeypatch, space
):
    from bpnet.apps import plots
    from bpnet.sweep.results import plot_sweep
    from bpnet.sweep.spec import load_sweep

    path = tmp_path / "s.yaml"
    body = SPACES[space]
    path.write_text(
        "config: quick.yaml\nset: {data.subset: 300, data.validation: 100}\n"
        + (f"space:\n  {body}\n" if body != "{}" else "space: {}\n")
        + "n_trials: 6\nsampler: random\n"
    )
    sweep = load_sweep(str(path))
    study = optuna.create_study(direction="maximize")
    for k in range(6):  # 4 complete, 1 pruned, 1 failed
        state = [optuna.trial.TrialState.COMPLETE] * 4 + [
            optuna.trial.TrialState.PRUNED,
            optuna.trial.TrialState.FAIL,
        ]
        rng = random.Random(k)
        params, dists = {}, {}
        for d in sweep.space:
            dist = d.distribution()
            if d.kind == "choice":
                params[d.key] = d.labels[k % len(d.labels)]
            else:
                params[d.key] = rng.uniform(*d.values)
            dists[d.key] = dist
        failed = state[k] == optuna.trial.TrialState.FAIL
        study.add_trial(  # a pruned trial's value is its last report, as Optuna tells it
            optuna.trial.create_trial(
                state=state[k],
                value=None if failed else 0.5 + k / 20,
                params=params,
                distributions=dists,
                user_attrs={"curve": {"epoch": [1.0, 2.0], "val_acc": [0.4, 0.5 + k / 20]}},
            )
        )
    shown = {}
    monkeypatch.setattr(plots, "save_png", lambda fig, p: shown.setdefault("fig", fig))
    plot_sweep(study, sweep, tmp_path / "sweep.png")
    left, right = shown["fig"].axes[:2]
    assert len(left.lines) == 4
    assert left.get_title() == "best 4 of 6 trials of s"
    assert right.collections, "the right panel is blank"
    assert sum(len(c.get_offsets()) for c in right.collections) == 4
    assert right.get_title() == "sampled values of 4 complete trials"


def test_a_40000_value_choice_is_checked_without_a_config_per_value(tmp_path, monkeypatch):
    from bpnet.sweep.spec import load_sweep

    values = ",".join(str(i + 1) for i in range(40_000))
    path = tmp_path / "big.yaml"
    path.write_text(
        "config: quick.yaml\nset: {data.subset: 2000, data.validation: 500}\n"
        f"space:\n  model.hidden: {{choice: [{values}]}}\n"
    )
    assert path.stat().st_size < 256 * 1024
    copies = []
    deepcopy = copy.deepcopy
    monkeypatch.setattr(copy, "deepcopy", lambda *a, **k: copies.append(1) or deepcopy(*a, **k))
    sweep = load_sweep(str(path))
    assert len(sweep.space[0].values) == 40_000 and sweep.space[0].values[-1] == [40_000]
    assert len(copies) < 10  # the base config's, not one per value
    record = sweep.definition()["space"]["model.hidden"]["choice"]
    assert record["count"] == 40_000 and len(record["sha256"]) == 64


def test_long_list_choices_keep_labels_of_their_own_and_twice_is_refused(tmp_path, bpnet_exe):
    from bpnet.sweep.spec import load_sweep

    a, b = [100] * 70, [100] * 69 + [50]
    path = tmp_path / "long.yaml"
    path.write_text(
        "config: quick.yaml\nset: {data.validation: 500}\n"
        f"space:\n  model.hidden: {{choice: [{a}, {b}]}}\n"
    )
    dim = load_sweep(str(path)).space[0]
    assert len(set(dim.labels)) == 2 and dim.value_of(dim.labels[1]) == b
    path.write_text("config: quick.yaml\nspace:\n  model.hidden: {choice: [[5], 5, [6]]}\n")
    r = subprocess.run(
        [bpnet_exe, "sweep", str(path)], cwd=tmp_path, capture_output=True, text=True
    )
    assert r.returncode == 2
    assert r.stderr.strip() == (
        f"bpnet: error: {path}: space.model.hidden.choice: '[5]' is given twice"
    )
