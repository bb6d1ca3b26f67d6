"""A sweep journal written by bpnet 0.1.0 (tests/fixtures/v0.1.0/sweep) is the same finished
study to this version: the same command reports its three trials and retrains nothing."""

from __future__ import annotations

import csv
import shutil
import subprocess

import pytest
import yaml
from mnist import REPO

pytest.importorskip("optuna", reason="pip install 'bpnet[sweep]'")
OLD = REPO / "tests" / "fixtures" / "v0.1.0"


def rows(path):
    with open(path, newline="") as fh:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(fh)]


def test_the_old_study_is_finished_and_reported_the_same(mnist_session_dir, tmp_path, bpnet_exe):
    out = tmp_path / "sweep"
    shutil.copytree(OLD / "sweep", out)
    before = (out / "journal.log").read_bytes()
    shutil.copy(OLD / "tinysweep.yaml", tmp_path)
    p = subprocess.run(
        [
            bpnet_exe,
            "sweep",
            "tinysweep.yaml",
            "--out",
            str(out),
            "--jobs",
            "1",
            "--data-dir",
            str(mnist_session_dir),
            "--offline",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    assert "3 of 3 trials: 3 complete" in p.stdout
    assert rows(out / "trials.csv") == rows(OLD / "sweep" / "trials.csv")
    new, old = ((out / "best.yaml").read_text(), (OLD / "sweep" / "best.yaml").read_text())
    assert new.splitlines()[0] == old.splitlines()[0]  # the same winner and value
    new, old = yaml.safe_load(new), yaml.safe_load(old)
    assert new.pop("data_dir") == str(mnist_session_dir) and old.pop("data_dir") == "data"
    assert new == old
    assert (out / "journal.log").read_bytes()[
        : len(before)
    ] == before  # appended to, never rewritten
