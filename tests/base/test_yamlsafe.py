"""bpnet's YAML reader: libyaml's parser where PyYAML has it, giving the same documents as the
pure-Python parser (huge integers kept unconverted, nesting bounded), and the pure-Python parser's
messages for a document either refuses."""

from __future__ import annotations

import pytest
import yaml

from bpnet.base import yamlsafe
from bpnet.base.limits import MAX_DEPTH
from bpnet.base.yamlsafe import BigInt, load_yaml
from bpnet.errors import ConfigError

DOCUMENTS = [
    "train:\n  lr: 0.1\n  epochs: 3\nmodel:\n  hidden: [100, 50]\n",
    "a: 1e-3\nb: 1.0e-3\nc: .inf\nd: -.nan\ne: ~\nf: yes\ng: 0x1f\nh: 0o17\ni: '012'\n",
    "space:\n  model.hidden: {choice: [[100], [100, 100], 50]}\n",
    "k: !!str 5\nl: !!float 3\nm: 2026-12-05\nn: [a, b, {c: d}]\n",
    "# only a comment\n",
    "",
]


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="this PyYAML has no libyaml")
def test_libyaml_is_used_where_present():
    assert issubclass(yamlsafe._CLoader, yaml.CSafeLoader)


@pytest.mark.parametrize("text", DOCUMENTS)
def test_both_parsers_read_the_same_documents(text):
    fast = yamlsafe._bounded_load(text, "x.yaml", None, yamlsafe._CLoader)
    slow = yamlsafe._bounded_load(text, "x.yaml", None, yamlsafe._PyLoader)
    assert repr(fast) == repr(slow)  # repr: NaN compares unequal to itself
    assert repr(load_yaml(text, "x.yaml")) == repr(yaml.safe_load(text))


@pytest.mark.parametrize("loader", ["_CLoader", "_PyLoader"])
def test_huge_integers_stay_unconverted_on_either_parser(loader):
    doc = yamlsafe._bounded_load(
        "n: " + "9" * 5000 + "\n", "x.yaml", None, getattr(yamlsafe, loader)
    )
    assert isinstance(doc["n"], BigInt) and doc["n"].digits == 5000


@pytest.mark.parametrize("loader", ["_CLoader", "_PyLoader"])
def test_nesting_is_bounded_on_either_parser(loader):
    text = "a: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n"
    with pytest.raises(ConfigError, match=f"nested more than {MAX_DEPTH} levels"):
        yamlsafe._bounded_load(text, "x.yaml", None, getattr(yamlsafe, loader))


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "train:\n  lr: [0.1\n",
            "x.yaml: line 3, column 1: invalid YAML (while parsing a flow sequence, "
            "expected ',' or ']', but got '<stream end>')",
        ),
        (
            "a: b: c\n",
            "x.yaml: line 1, column 5: invalid YAML (mapping values are not allowed here)",
        ),
    ],
)
def test_a_refused_document_has_the_pure_python_parsers_message(text, message):
    with pytest.raises(ConfigError) as e:
        load_yaml(text, "x.yaml")
    assert str(e.value) == message
