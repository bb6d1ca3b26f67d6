"""base/extras.require: a missing optional dependency is one line naming the extra to install;
one that is installed but cannot load says so instead (no wrong 'pip install' advice), and a
load that failed for want of memory is an out-of-memory error."""

from __future__ import annotations

import importlib

import pytest

from bpnet.base import extras
from bpnet.base.extras import ExtraMissing, require


def failing(error):
    def import_module(name):
        raise error

    return import_module


@pytest.mark.parametrize(
    "error",
    [
        ModuleNotFoundError("No module named 'onnx'", name="onnx"),
        ImportError("No module named 'onnx'"),
    ],
)
def test_a_missing_package_names_its_extra(monkeypatch, error):
    monkeypatch.setattr(extras.importlib, "import_module", failing(error))
    with pytest.raises(ExtraMissing) as e:
        require("onnx", "onnx", "exporting to ONNX", "the onnx package")
    assert str(e.value) == (
        "exporting to ONNX needs the onnx package, which is not installed: "
        "pip install 'bpnet[onnx]'"
    )


def test_an_installed_package_that_cannot_load_is_not_called_missing(monkeypatch):
    broken = ModuleNotFoundError("No module named 'google.protobuf'", name="google.protobuf")
    monkeypatch.setattr(extras.importlib, "import_module", failing(broken))
    with pytest.raises(ExtraMissing, match=r"installed but cannot be loaded \(module google"):
        require("onnx", "onnx", "exporting to ONNX")
    libs = ImportError("libonnx.so: cannot open shared object file: No such file or directory")
    monkeypatch.setattr(extras.importlib, "import_module", failing(libs))
    with pytest.raises(ExtraMissing, match="installed but cannot be loaded") as e:
        require("onnx", "onnx", "exporting to ONNX")
    assert "pip install" not in str(e.value)


@pytest.mark.parametrize(
    "text", ["failed to map segment from shared object", "Cannot allocate memory"]
)
def test_a_load_that_ran_out_of_memory_is_out_of_memory(monkeypatch, text):
    monkeypatch.setattr(extras.importlib, "import_module", failing(ImportError(f"x.so: {text}")))
    with pytest.raises(MemoryError):
        require("onnx", "onnx", "exporting to ONNX")


def test_an_installed_package_is_returned():
    assert require("json", "none", "reading") is importlib.import_module("json")
