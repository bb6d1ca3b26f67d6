"""Configs: shipped files, schema checks with one-line errors, overrides, round trip, CLI use."""

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from bpnet.cli.common import load_config_from_cli
from bpnet.cli.main import main
from bpnet.errors import ConfigError, InputError
from bpnet.nn import MultiLayerNet
from bpnet.training.config import FIELDS, Config, defaults, dump_config, key_table, network_kwargs
from bpnet.training.sources import list_configs, load_config, parse_override, resolve_config_path

REPO = Path(__file__).resolve().parents[2]
SCHEMA = Config.model_fields  # the config's top-level keys, in their order
SHIPPED = (
    "fashion-mnist",
    "mnist",
    "mnist-augment",
    "mnist-augment-fast",
    "mnist-best",
    "mnist-bn",
    "mnist-cnn",
    "mnist-cnn-fast",
    "mnist-deep",
    "mnist-fast",
    "quick",
)


def write(tmp_path, text, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(*args, **kwargs):
    with pytest.raises(ConfigError) as info:
        load_config(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- shipped configs ------------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_loads_with_every_key(name):
    cfg = load_config(name)
    assert cfg["name"] == name and cfg["output"]["dir"] == f"runs/{name}"
    assert set(cfg) == set(SCHEMA)
    for key in FIELDS:
        section, _, leaf = key.rpartition(".")
        assert leaf in (cfg[section] if section else cfg), key
    text = (REPO / "configs" / f"{name}.yaml").read_text()
    assert re.match(r"# \S", text), "a shipped config starts with its one-line description"


def test_mnist_config_is_the_lessons_run():
    cfg = load_config("mnist")
    assert cfg["model"] == {
        "layers": None,
        "hidden": [50],
        "activation": "relu",
        "weight_init": 0.01,
        "batchnorm": False,
        "dropout": 0.0,
    }
    train = cfg["train"]
    assert (train["iterations"], train["epochs"], train["batch_size"]) == (10000, None, 100)
    assert (train["optimizer"], train["lr"], train["schedule"]) == ("sgd", 0.1, "none")
    assert (train["seed"], train["dtype"], train["shuffle"]) == (0, "float32", True)
    assert cfg["data"] == {"normalize": True, "validation": 0, "subset": None}
    assert cfg["eval"]["every"] == 1 and cfg["early_stopping"]["patience"] == 0


def test_other_shipped_configs_fit_their_purpose():
    best, quick = load_config("mnist-best"), load_config("quick")
    fashion = load_config("fashion-mnist")
    assert best["model"]["hidden"] == [800] and best["model"]["weight_init"] == "he"
    assert best["train"]["optimizer"] in ("momentum", "adam")
    assert best["train"]["schedule"] in ("cosine", "step") and best["train"]["weight_decay"] > 0
    assert 20 <= best["train"]["epochs"] <= 30
    assert best["data"]["validation"] == 0 and best["early_stopping"]["patience"] == 0
    assert quick["train"]["epochs"] == 1 and quick["data"]["validation"] == 1000
    assert quick["model"]["hidden"] == [50]
    assert fashion["dataset"] == "fashion-mnist" and fashion["model"]["hidden"] == [256]
    assert fashion["train"]["optimizer"] == "adam" and fashion["data"]["validation"] == 5000


def test_list_configs_gives_names_and_first_comment_line():
    listed = dict(list_configs())
    assert sorted(listed) == list(SHIPPED)
    for name, about in listed.items():
        schema, first = (REPO / "configs" / f"{name}.yaml").read_text().splitlines()[:2]
        assert schema == "# yaml-language-server: $schema=schema/config.json"
        assert about and first == f"# {about}"


# --- lookup: a path first, then a shipped name --------------------------------------------


def test_shipped_config_found_by_bare_name_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for spelling in ("mnist", "mnist.yaml"):
        path = resolve_config_path(spelling)
        assert path.is_file() and path.parent.name == "configs" and path.name == "mnist.yaml"
        assert load_config(spelling)["train"]["iterations"] == 10000


def test_an_existing_file_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "train: {epochs: 2}\n", "mnist.yaml")
    assert resolve_config_path("mnist.yaml") == Path("mnist.yaml")
    cfg = load_config("mnist.yaml")
    assert cfg["train"]["epochs"] == 2 and cfg["model"]["weight_init"] == 0.01
    assert cfg["data"]["validation"] == 5000  # the defaults, not the shipped mnist.yaml


def test_missing_config_lists_the_shipped_names(tmp_path):
    message = config_error(str(tmp_path / "nope.yaml"))
    assert message.startswith(f"{tmp_path / 'nope.yaml'}: no such file")
    assert (
        "shipped: fashion-mnist, mnist, mnist-augment, mnist-augment-fast, mnist-best, "
        "mnist-bn, mnist-cnn, mnist-cnn-fast, mnist-deep, mnist-fast, quick" in message
    )
    assert "no such file" in config_error("mnist-worst")


def test_a_directory_is_not_a_config(tmp_path):
    assert config_error(str(tmp_path)) == f"{tmp_path}: is a directory, expected a YAML config file"


# --- defaults, empty files, and the epochs/iterations rule -------------------------------


@pytest.mark.parametrize("text", ["", "# only a comment\n", "train:\n  # nothing set\n"])
def test_empty_file_or_section_means_all_defaults(tmp_path, text):
    cfg = load_config(write(tmp_path, text, "plain.yaml"))
    expected = defaults()
    expected.update(name="plain", output={"dir": "runs/plain"})
    assert cfg == expected
    assert cfg["train"]["epochs"] == 10 and cfg["train"]["iterations"] is None


def test_setting_iterations_clears_the_default_epochs(tmp_path):
    cfg = load_config(write(tmp_path, "train: {iterations: 300}\n"))
    assert cfg["train"]["iterations"] == 300 and cfg["train"]["epochs"] is None


def test_a_later_source_switches_between_epochs_and_iterations(tmp_path):
    path = write(tmp_path, "train: {iterations: 300}\n")
    cfg = load_config(path, ["train.epochs=3"])
    assert (cfg["train"]["epochs"], cfg["train"]["iterations"]) == (3, None)
    cfg = load_config(path, ["train.epochs=3", "train.iterations=50"])
    assert (cfg["train"]["epochs"], cfg["train"]["iterations"]) == (None, 50)
    cfg = load_config(path, [], {"train.epochs": 4})
    assert (cfg["train"]["epochs"], cfg["train"]["iterations"]) == (4, None)


def test_one_source_setting_both_lengths_is_an_error(tmp_path):
    path = write(tmp_path, "train:\n  epochs: 5\n  iterations: 100\n")
    assert config_error(path) == (
        f"{path}: train.iterations: expected train.epochs or "
        "train.iterations, not both (got epochs 5, iterations 100)"
    )


def test_clearing_the_only_length_is_an_error_naming_that_source(tmp_path):
    path = write(tmp_path, "train: {epochs: null}\n")
    assert config_error(path) == (
        f"{path}: train.epochs: expected a value for train.epochs or "
        "train.iterations, got null for both"
    )
    message = config_error(write(tmp_path, "train: {epochs: 4}\n"), ["train.epochs=null"])
    assert message.startswith("--set train.epochs=null: train.epochs: expected a value")


# --- one-line errors naming source, key, value and expectation ---------------------------

BAD_FILES = [
    # unknown keys at every level, with a hint where one is close
    ("modle: {hidden: [5]}", "modle: unknown key (did you mean model?)"),
    ("lerning_rate: 0.1", "lerning_rate: unknown key (did you mean train.lr?)"),
    ("lr: 0.1", "lr: unknown key (did you mean train.lr?)"),
    ("model: {hiden: [5]}", "model.hiden: unknown key (did you mean model.hidden?)"),
    ("model: {lr: 0.1}", "model.lr: unknown key (did you mean train.lr?)"),
    ("data: {validaton: 10}", "data.validaton: unknown key (did you mean data.validation?)"),
    ("train: {lerning_rate: 0.1}", "train.lerning_rate: unknown key (did you mean train.lr?)"),
    ("train: {epoch: 3}", "train.epoch: unknown key (did you mean train.epochs?)"),
    ("train: {zzz: 1}", "train.zzz: unknown key"),
    ("eval: {evry: 2}", "eval.evry: unknown key (did you mean eval.every?)"),
    (
        "early_stopping: {patiense: 3}",
        "early_stopping.patiense: unknown key (did you mean early_stopping.patience?)",
    ),
    ("output: {directory: x}", "output.directory: unknown key (did you mean output.dir?)"),
    (
        "model: {batch_size: 5}",
        "model.batch_size: unknown key (did you mean eval.batch_size or train.batch_size?)",
    ),
    # wrong types: no booleans or text for numbers, no floats for integers
    ("train: {lr: true}", "train.lr: expected a number > 0, got true"),
    ("train: {lr: '0.1'}", "train.lr: expected a number > 0, got '0.1' (text, not a number"),
    ("train: {batch_size: 1e2}", "train.batch_size: expected an integer > 0, got 1e2"),
    ("train: {lr: fast}", "train.lr: expected a number > 0, got fast"),
    ("train: {lr: .nan}", "train.lr: expected a number > 0, got .nan"),
    ("train: {lr: [0.1]}", "train.lr: expected a number > 0, got [0.1]"),
    ("train: {batch_size: 10.5}", "train.batch_size: expected an integer > 0, got 10.5"),
    ("train: {batch_size: 100.0}", "train.batch_size: expected an integer > 0, got 100.0"),
    ("train: {epochs: true}", "train.epochs: expected an integer > 0 or null, got true"),
    ("train: {shuffle: 1}", "train.shuffle: expected true or false, got 1"),
    ("data: {normalize: 'yes'}", "data.normalize: expected true or false, got 'yes'"),
    (
        "model: {hidden: [100, 0]}",
        "model.hidden: expected a list of integers > 0 (or one integer > 0), got [100, 0]",
    ),
    ("model: {hidden: [100.5]}", "model.hidden: expected a list of integers > 0"),
    ("model: {hidden: '100'}", "model.hidden: expected a list of integers > 0"),
    (
        "model: {weight_init: kaiming}",
        "model.weight_init: expected a number > 0, he or xavier, got kaiming",
    ),
    ("model: {weight_init: 0}", "model.weight_init: expected a number > 0, he or xavier, got 0"),
    ("data_dir: 5", "data_dir: expected a folder path or null, got 5"),
    ("name: runs/x", "name: expected a name (no slashes) or null, got runs/x"),
    (
        "model: [50]",
        "model: expected a mapping of layers, hidden, activation, weight_init, batchnorm, dropout, "
        "got [50]",
    ),
    # out of range
    ("train: {lr: -1}", "train.lr: expected a number > 0, got -1"),
    ("train: {lr: 0}", "train.lr: expected a number > 0, got 0"),
    ("train: {epochs: 0}", "train.epochs: expected an integer > 0 or null, got 0"),
    ("train: {momentum: 1}", "train.momentum: expected a number in [0, 1), got 1"),
    ("train: {beta2: -0.5}", "train.beta2: expected a number in [0, 1), got -0.5"),
    ("train: {gamma: 0}", "train.gamma: expected a number in (0, 1], got 0"),
    ("train: {weight_decay: -0.1}", "train.weight_decay: expected a number >= 0, got -0.1"),
    ("train: {seed: -1}", "train.seed: expected an integer >= 0, got -1"),
    ("data: {validation: 60000}", "data.validation: expected an integer in [0, 60000), got 60000"),
    ("eval: {every: 0}", "eval.every: expected an integer > 0, got 0"),
    ("early_stopping: {min_delta: -1}", "early_stopping.min_delta: expected a number >= 0, got -1"),
    # bad choices
    ("dataset: cifar10", "dataset: expected one of mnist, fashion-mnist, got cifar10"),
    ("model: {activation: tanh}", "model.activation: expected one of relu, sigmoid, got tanh"),
    (
        "train: {optimizer: rmsprop2}",
        "train.optimizer: expected one of sgd, momentum, nesterov, adagrad, rmsprop, adam, "
        "got rmsprop2",
    ),
    (
        "train: {schedule: linear}",
        "train.schedule: expected one of none, step, cosine, onecycle, got linear",
    ),
    ("train: {dtype: float16}", "train.dtype: expected one of float32, float64, got float16"),
    # rules between keys
    (
        "data: {validation: 0}\nearly_stopping: {patience: 3}",
        "early_stopping.patience: 3 conflicts with data.validation = 0: early stopping "
        "(patience > 0) "
        "needs validation images (data.validation > 0)",
    ),
    (
        "train: {schedule: cosine, lr: 0.1, min_lr: 0.1}",
        "train.min_lr: 0.1 conflicts with train.lr = 0.1, train.schedule = cosine: "
        "the cosine schedule needs train.min_lr < train.lr",
    ),
]


@pytest.mark.parametrize(
    "text,expected", BAD_FILES, ids=[e.split(":")[0] + "|" + t[:24] for t, e in BAD_FILES]
)
def test_bad_config_file_names_file_key_value_and_expectation(tmp_path, text, expected):
    path = write(tmp_path, text + "\n")
    message = config_error(path)
    assert message.startswith(f"{path}: {expected}")
    if "did you mean" not in expected:
        assert "did you mean" not in message


def test_errors_are_input_errors_with_exit_status_2():
    assert issubclass(ConfigError, InputError) and ConfigError.exit_code == 2


@pytest.mark.parametrize(
    "text,expected",
    [
        (
            "train:\n  lr: [0.1\n",
            r": line 3, column 1: invalid YAML \(while parsing a flow sequence, "
            r"expected ',' or ']'",
        ),
        ("train:\n  lr: 0.1\n bad: 1\n", r": line 3, column 2: invalid YAML"),
        (
            "a: 1\n---\nb: 2\n",
            r": line 2, column 1: invalid YAML \(expected a single document in "
            r"the stream, but found another document\)$",
        ),
        (
            "- mnist\n- quick\n",
            r": expected a mapping of keys \(name, dataset, .*\) at the top level, "
            r"got \[mnist, quick\]",
        ),
        ("just words\n", r": expected a mapping of keys .* at the top level, got just words"),
    ],
)
def test_unreadable_yaml_is_one_line_with_its_position(tmp_path, text, expected):
    path = write(tmp_path, text)
    assert re.match(re.escape(str(path)) + expected, config_error(path))


def test_undecodable_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert config_error(path) == f"{path}: expected UTF-8 text, got undecodable bytes"


# --- overrides --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,key,value",
    [
        ("train.lr=0.05", "train.lr", 0.05),
        ("train.epochs=5", "train.epochs", 5),
        ("model.hidden=[100, 50]", "model.hidden", [100, 50]),
        ("model.hidden=[100,50]", "model.hidden", [100, 50]),
        ("data_dir=null", "data_dir", None),
        ("model.weight_init=he", "model.weight_init", "he"),
        ("train.shuffle=false", "train.shuffle", False),
        ("output.dir=runs/a=b", "output.dir", "runs/a=b"),
        (" train.lr = 0.5", "train.lr", 0.5),
    ],
)
def test_override_values_are_yaml_scalars(text, key, value):
    assert parse_override(text) == (key, value)


@pytest.mark.parametrize("text", ["train.lr", "=0.1", "train..lr=1", ".lr=1", "train.=1"])
def test_malformed_override(text):
    with pytest.raises(ConfigError) as info:
        parse_override(text)
    assert str(info.value) == (
        f"--set {text}: expected KEY=VALUE with a dotted key, e.g. --set train.lr=0.05"
    )


def test_overrides_apply_in_order_then_command_line_values(tmp_path):
    path = write(tmp_path, "train: {lr: 0.3, seed: 7}\n")
    cfg = load_config(path, ["train.lr=0.5", "model.hidden=[20, 10]", "train.lr=0.2"])
    assert cfg["train"]["lr"] == 0.2 and cfg["model"]["hidden"] == [20, 10]
    cfg = load_config(
        path, ["train.lr=0.5"], {"train.lr": 0.4, "train.seed": None, "output.dir": "out/here"}
    )
    assert cfg["train"]["lr"] == 0.4 and cfg["train"]["seed"] == 7
    assert cfg["output"]["dir"] == "out/here"


def test_a_single_hidden_size_becomes_a_list_and_ints_become_floats(tmp_path):
    cfg = load_config(write(tmp_path, "model: {hidden: 64}\ntrain: {lr: 1, min_lr: 0}\n"))
    assert cfg["model"]["hidden"] == [64]
    assert cfg["train"]["lr"] == 1.0 and isinstance(cfg["train"]["lr"], float)
    assert load_config(write(tmp_path, "model: {hidden: []}\n"))["model"]["hidden"] == []


@pytest.mark.parametrize(
    "override,expected",
    [
        ("train.lr=abc", "--set train.lr=abc: train.lr: expected a number > 0, got abc"),
        ("train.lr=[0.1", "--set train.lr=[0.1: train.lr: expected a YAML value, got '[0.1'"),
        (
            "train.lerning_rate=0.1",
            "--set train.lerning_rate=0.1: train.lerning_rate: unknown key "
            "(did you mean train.lr?)",
        ),
        ("model.hidden.x=1", "--set model.hidden.x=1: model.hidden: expected a list of integers"),
        (
            "early_stopping.patience=2",
            "--set early_stopping.patience=2: early_stopping.patience: 2 conflicts with "
            "data.validation = 0",
        ),
    ],
)
def test_bad_override_names_the_override_and_key(tmp_path, override, expected):
    path = write(tmp_path, "data: {validation: 0}\n")
    assert config_error(path, [override]).startswith(expected)


def test_a_conflict_is_blamed_on_whichever_key_was_set_last(tmp_path):
    path = write(tmp_path, "early_stopping: {patience: 3}\n")
    assert config_error(path, ["data.validation=0"]).startswith(
        "--set data.validation=0: data.validation: 0 conflicts with early_stopping.patience = 3"
    )
    assert config_error(path, [], {"data.validation": 0}).startswith(
        "command line: data.validation: 0 conflicts with"
    )


def test_command_line_shortcuts_are_keys_spelled_with_underscores():
    cfg = load_config_from_cli(
        "quick",
        ["train.lr=0.5"],
        train_epochs=2,
        train_seed=None,
        output_dir="elsewhere",
        data_dir="/data",
    )
    assert cfg["train"]["epochs"] == 2 and cfg["train"]["seed"] == 0
    assert cfg["train"]["lr"] == 0.5 and cfg["output"]["dir"] == "elsewhere"
    assert cfg["data_dir"] == "/data"
    with pytest.raises(TypeError, match="epochs"):
        load_config_from_cli("quick", [], epochs=2)


# --- dump / load round trip, network arguments -------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_dump_then_load_gives_the_same_config(tmp_path, name):
    conv = load_config(name)["model"]["layers"] is not None
    sets = [] if conv else ["model.hidden=[30, 20]"]
    cfg = load_config(name, [*sets, "train.weight_decay=1.0e-4"])
    text = dump_config(cfg)
    assert list(yaml.safe_load(text)) == list(SCHEMA)
    assert ("{conv: {filters: " if conv else "hidden: [30, 20]\n") in text
    again = load_config(write(tmp_path, text, "config.yaml"))
    assert again == cfg and again["name"] == name  # the saved name, not the file's stem


def test_network_kwargs_build_the_configs_model():
    cfg = load_config("mnist-best")
    net = MultiLayerNet(**network_kwargs(cfg), rng=0)
    assert net.sizes == [784, 800, 10] and net.params["W1"].dtype == np.float32
    assert net.weight_decay == cfg["train"]["weight_decay"] > 0
    assert net.params["W1"].std() == pytest.approx(np.sqrt(2 / 784), rel=0.02)  # he
    net = MultiLayerNet(**network_kwargs(load_config("mnist"), dtype=np.float64), rng=0)
    assert net.sizes == [784, 50, 10] and net.params["W2"].dtype == np.float64
    assert net.params["W1"].std() == pytest.approx(0.01, rel=0.02)


# --- the configuration page documents every key ------------------------------------------


def test_the_configuration_page_lists_the_shipped_configs_and_its_key_table_is_the_schema():
    page = (REPO / "docs" / "configuration.md").read_text()
    for name in SHIPPED:
        assert f"| `{name}` | " in page
    assert key_table() in page
    for key, field in FIELDS.items():  # the table is made from the models: each row says so
        default = yaml.safe_dump(field.default, default_flow_style=True).strip()
        default = default.removesuffix("\n...")
        assert f"| `{key}` | `{default}` | {field.expected} | {field.help} |" in page, key


# --- through the command line ---------------------------------------------------------------


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_gradcheck_checks_the_configs_model(tmp_path):
    r = run(
        "gradcheck",
        "--json",
        "--config",
        "quick",
        "--data-dir",
        str(tmp_path),
        "--set",
        "model.hidden=[8, 6]",
        "--set",
        "model.activation=sigmoid",
        "--set",
        "train.weight_decay=0.1",
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["passed"] and doc["config"] == "quick"
    assert doc["network"] == "784-8-6-10 sigmoid, weight_init he, weight_decay 0.1 (config quick)"
    assert {"net W3", "net b3"} <= {c["name"] for c in doc["checks"]}


def test_gradcheck_uses_the_configs_dataset(tmp_path):
    r = run("gradcheck", "--config", "fashion-mnist", "--data-dir", str(tmp_path))
    assert r.exit_code == 0, r.output
    assert f"no Fashion-MNIST in {tmp_path / 'fashion-mnist'}" in r.output
    assert "784-256-10 relu" in r.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["--config", "mnist", "--hidden", "5"], "--hidden cannot be combined with --config"),
        (["--config", "mnist", "--activation", "relu"], "--activation cannot be combined"),
        (["--set", "train.lr=0.1"], "--set needs --config"),
    ],
)
def test_gradcheck_option_conflicts_are_usage_errors(args, message):
    r = run("gradcheck", *args)
    assert r.exit_code == 2 and message in r.output


def test_gradcheck_lists_shipped_configs():
    r = run("gradcheck", "--list-configs")
    assert r.exit_code == 0
    for name, about in list_configs():
        assert re.search(rf"^{re.escape(name)}\s+{re.escape(about)}$", r.output, re.M)


def test_installed_gradcheck_with_config(bpnet_exe, tmp_path):
    p = subprocess.run(
        [bpnet_exe, "gradcheck", "--config", "mnist.yaml", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "(config mnist)" in p.stdout and "all 27 checks passed" in p.stdout
    bad = write(tmp_path, "train:\n  lr: -1\n", "bad.yaml")
    p = subprocess.run(
        [bpnet_exe, "gradcheck", "--config", str(bad)], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == f"bpnet: error: {bad}: train.lr: expected a number > 0, got -1\n"


@pytest.mark.parametrize("text,value", [("1e-8", 1e-8), ("-2.5E3", -2500.0), ("1.0e-8", 1e-8)])
def test_exponents_without_a_dot_are_numbers(text, value):
    key = "train.eps" if value > 0 else "train.lr"
    if value < 0:
        with pytest.raises(ConfigError, match="train.lr: expected a number > 0"):
            load_config("quick", [f"{key}={text}"])
    else:
        assert load_config("quick", [f"{key}={text}"])["train"]["eps"] == value
