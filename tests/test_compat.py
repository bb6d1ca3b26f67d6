"""The import paths from before the package had wings (bpnet.nn.config, bpnet.nn.data, ...): each
still imports, hands out the very objects of the modules it moved to, and warns with a
DeprecationWarning naming them. This is the only test module that uses the old paths."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys

import pytest

# old module: {new module its warning names: names looked up through the old one}
MOVED = {
    "bpnet.nn.config": {
        "bpnet.training.config": ["FIELDS", "defaults", "dump_config"],
        "bpnet.training.sources": ["load_config", "list_configs", "resolve_config_path"],
        "bpnet.training.memory": ["check_memory", "memory_needs"],
        "bpnet.base.yamlsafe": ["load_yaml", "BigInt"],
        "bpnet.errors": ["ConfigError", "InputError"],
    },
    "bpnet.nn.train": {
        "bpnet.training.trainer": ["Trainer", "Progress", "TrainingInterrupted"],
        "bpnet.training.batches": ["load_data", "BatchStream", "Split"],
        "bpnet.training.checkpoint": ["State", "read_checkpoint"],
    },
    "bpnet.nn.io": {
        "bpnet.training.weights": [
            "load_weights",
            "save_weights",
            "WeightsError",
            "network_from_weights",
        ],
        "bpnet.base.files": ["atomic_write_text", "read_bytes"],
    },
    "bpnet.nn.data": {
        "bpnet.data.idx": [
            "load_dataset",
            "load_arrays",
            "load_split",
            "DataMissing",
            "CACHE_NAME",
        ],
        "bpnet.data.specs": ["DatasetSpec", "FileSpec", "SPECS", "mnist_layout"],
        "bpnet.data.home": ["default_data_dir", "data_dir_note"],
    },
    "bpnet.nn.download": {
        "bpnet.data.download": ["ensure_dataset", "download_dataset", "DownloadFailed"],
        "bpnet.data.mirrors": ["HttpOptions", "mirror_list"],
    },
    "bpnet.nn.augment": {"bpnet.data.augment": ["Augmenter", "gaussian_matrix"]},
    "bpnet.nn.images": {"bpnet.data.images": ["load_digit", "mnist_preprocess", "read_image"]},
    "bpnet.nn.metrics": {
        "bpnet.nn.evaluate": ["evaluate", "to_input", "input_scale", "confusion_matrix"]
    },
    "bpnet.nn.plots": {"bpnet.apps.plots": ["plot_metrics", "error_grid", "read_metrics"]},
    "bpnet.nn.export": {"bpnet.apps.export": ["export_onnx", "onnx_model"]},
    "bpnet.nn.serve": {"bpnet.apps.serve": ["make_server", "serve", "BODY_SECONDS"]},
    "bpnet.nn.sweep": {
        "bpnet.sweep.spec": ["load_sweep", "list_sweeps", "SweepError"],
        "bpnet.sweep.study": ["open_storage", "open_study", "claim_trial"],
        "bpnet.sweep.workers": ["run_sweep", "work", "_Heartbeat"],
        "bpnet.sweep.results": ["best_trials", "write_best_yaml"],
    },
    "bpnet.nn.files": {
        "bpnet.base.files": ["atomic_write", "describe", "regular_file"],
        "bpnet.base.folders": ["swap_dirs", "staging_dir", "clean_leftovers"],
    },
    "bpnet.nn.limits": {
        "bpnet.base.limits": ["limit", "parse_size", "LIMITS"],
        "bpnet.base.text": ["clip", "human"],
    },
    "bpnet.nn.errors": {"bpnet.errors": ["BpnetError", "InputError", "ConfigError"]},
}

# names that bpnet.nn itself handed out before the datasets got their own wing
NN_NAMES = {
    "load_dataset": "bpnet.data.idx",
    "ensure_dataset": "bpnet.data.download",
    "download_dataset": "bpnet.data.download",
    "HttpOptions": "bpnet.data.mirrors",
    "DatasetSpec": "bpnet.data.specs",
    "FileSpec": "bpnet.data.specs",
}

NEW_MODULES = sorted(
    {new for targets in MOVED.values() for new in targets}
    | set(NN_NAMES.values())
    | {
        "bpnet",
        "bpnet.nn",
        "bpnet.nn.layers",
        "bpnet.nn.network",
        "bpnet.nn.optim",
        "bpnet.nn.gradient",
        "bpnet.nn.gradcheck",
        "bpnet.nn.threads",
        "bpnet.data",
        "bpnet.training",
        "bpnet.sweep",
        "bpnet.apps",
        "bpnet.base",
        "bpnet.base.compat",
        "bpnet.cli.main",
        "bpnet.book.mnist",
    }
)


def fresh_import(old, monkeypatch):
    """Import ``old`` anew (so its module code, and its warning, runs again) and check that it
    warns once, naming itself and every module in MOVED[old]."""
    monkeypatch.delitem(sys.modules, old, raising=False)  # the original comes back afterwards
    with pytest.warns(DeprecationWarning, match=rf"^{re.escape(old)} moved to ") as record:
        module = importlib.import_module(old)
    ours = [w for w in record if str(w.message).startswith(f"{old} moved to ")]
    assert len(ours) == 1, [str(w.message) for w in record]
    message = str(ours[0].message)
    for new in MOVED[old]:
        assert re.search(rf"\b{re.escape(new)}\b", message), (new, message)
    assert message.endswith("the old path goes in the next release"), message
    return module


@pytest.mark.parametrize("old", sorted(MOVED))
def test_each_old_module_warns_and_forwards_to_the_new_ones(old, monkeypatch):
    module = fresh_import(old, monkeypatch)
    for new, names in MOVED[old].items():
        target = importlib.import_module(new)
        for name in names:
            assert getattr(module, name) is getattr(target, name), (old, name, new)
            assert name in dir(module), (old, name)
    with pytest.raises(
        AttributeError,
        match=rf"module '{re.escape(old)}' has no attribute "
        r"'no_such_name'",
    ):
        module.no_such_name  # noqa: B018


@pytest.mark.parametrize("old", sorted(MOVED))
def test_from_old_import_name_warns_each_time_the_module_is_imported_anew(old, monkeypatch):
    new, names = next(iter(MOVED[old].items()))
    for _ in range(2):
        monkeypatch.delitem(sys.modules, old, raising=False)
        namespace = {}
        with pytest.warns(
            DeprecationWarning,
            match=rf"^{re.escape(old)} moved to .*"
            rf"{re.escape(new)}",
        ):
            exec(f"from {old} import {names[0]}", namespace)
        assert namespace[names[0]] is getattr(importlib.import_module(new), names[0])


@pytest.mark.parametrize("name", sorted(NN_NAMES))
def test_bpnet_nn_names_that_moved_warn_on_every_use_and_are_the_new_objects(name):
    import bpnet.nn

    new = NN_NAMES[name]
    expected = getattr(importlib.import_module(new), name)
    for _ in range(2):  # a module __getattr__: no caching, so every lookup warns
        with pytest.warns(
            DeprecationWarning,
            match=rf"^bpnet\.nn\.{name} moved to "
            rf"{re.escape(new)}\.{name}; ",
        ):
            assert getattr(bpnet.nn, name) is expected
    namespace = {}
    with pytest.warns(DeprecationWarning, match=rf"^bpnet\.nn\.{name} moved to {re.escape(new)}"):
        exec(f"from bpnet.nn import {name}", namespace)
    assert namespace[name] is expected


def test_bpnet_nn_unknown_names_are_still_attribute_errors():
    import bpnet.nn

    with pytest.raises(AttributeError, match="module 'bpnet.nn' has no attribute 'no_such_name'"):
        bpnet.nn.no_such_name  # noqa: B018


def test_monkeypatching_through_an_old_path_does_not_reach_the_new_module(monkeypatch):
    """Why the tests use the new paths: an old module is an alias for lookups only."""
    old = fresh_import("bpnet.nn.serve", monkeypatch)
    serve = importlib.import_module("bpnet.apps.serve")
    before = serve.BODY_SECONDS
    monkeypatch.setattr(old, "BODY_SECONDS", before + 1, raising=False)
    assert before == serve.BODY_SECONDS


def test_the_new_modules_import_without_any_deprecation_warning():
    """In a fresh interpreter where a DeprecationWarning is an error: bpnet's own modules (the
    CLI included) never go through an old path."""
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    p = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", code, *NEW_MODULES],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
