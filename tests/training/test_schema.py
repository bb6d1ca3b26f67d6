"""The JSON Schemas that editors check config and sweep files with are the models' own: the
committed files equal what `bpnet train --schema` / `bpnet sweep --schema` print, every shipped
file names its schema on its first line and validates against it, and the schema refuses what
bpnet refuses."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from mnist import REPO

from bpnet.cli.main import main
from bpnet.sweep.spec import sweep_schema
from bpnet.training.config import config_schema, schema_text

KINDS = {
    "config": (config_schema, "configs/*.yaml", "schema/config.json"),
    "sweep": (sweep_schema, "configs/sweeps/*.yaml", "../schema/sweep.json"),
}


@pytest.mark.parametrize("kind", KINDS)
def test_the_committed_schema_is_the_models(kind):
    make, _, _ = KINDS[kind]
    committed = (REPO / "configs" / "schema" / f"{kind}.json").read_text()
    command = "train" if kind == "config" else "sweep"
    fix = f"bpnet {command} --schema > configs/schema/{kind}.json"
    assert committed == schema_text(make()), f"run: {fix}"
    r = CliRunner().invoke(main, [command, "--schema"])
    assert r.exit_code == 0 and r.output == committed


@pytest.mark.parametrize("kind", KINDS)
def test_every_shipped_file_names_its_schema_and_validates(kind):
    make, pattern, url = KINDS[kind]
    validator = jsonschema.Draft202012Validator(make())
    files = sorted(REPO.glob(pattern))
    assert len(files) >= 3
    for path in files:
        text = path.read_text()
        assert text.splitlines()[0] == f"# yaml-language-server: $schema={url}", path
        assert (path.parent / url).resolve() == REPO / "configs" / "schema" / f"{kind}.json"
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(text) or {})]
        assert not errors, (path, errors)


@pytest.mark.parametrize(
    "kind,doc",
    [
        ("config", {"train": {"lr": 0}}),
        ("config", {"train": {"lerning_rate": 0.1}}),
        ("config", {"model": {"hidden": [100, 0]}}),
        ("config", {"augment": {"scale": 1.0}}),
        ("config", {"dataset": "cifar10"}),
        ("sweep", {"set": {"train.lr": -1}}),
        ("sweep", {"space": {"train.lr": {"normal": [0, 1]}}}),
        ("sweep", {"space": {"lr": {"uniform": [0.1, 0.2]}}}),
        ("sweep", {"n_trials": 0}),
    ],
)
def test_the_schema_refuses_what_bpnet_refuses(kind, doc):
    validator = jsonschema.Draft202012Validator(KINDS[kind][0]())
    assert list(validator.iter_errors(json.loads(json.dumps(doc))))
