"""``printable``: a file name as bpnet prints it, one line whatever the name holds, ordinary
Unicode kept, and the same text however often it is applied."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest

from bpnet.base.text import display_width, printable

CASES = {
    "digit.png": "digit.png",
    "two\nlines.png": "two\\nlines.png",
    "cr\rreturn": "cr\\rreturn",
    "tab\there": "tab\\there",
    "x\x1b[2J\x1b[31mred": "x\\x1b[2J\\x1b[31mred",
    "bell\x07del\x7f": "bell\\x07del\\x7f",
    "nul\x00": "nul\\x00",
    "c1\x85\x9b": "c1\\x85\\x9b",
    "gpj.\u202eevil.png": "gpj.\\u202eevil.png",
    "\u2066isolate\u2069\u200f\u061c": "\\u2066isolate\\u2069\\u200f\\u061c",
    "line\u2028para\u2029": "line\\u2028para\\u2029",
    "chiffre 7 écrit à la main — 数字 😀.png": "chiffre 7 écrit à la main — 数字 😀.png",
    "ÿ and Ω": "ÿ and Ω",
    "a\ud800b": "a\\ud800b",  # a lone surrogate that is not an undecodable byte
}


@pytest.mark.parametrize("name, shown", CASES.items(), ids=[repr(k) for k in CASES])
def test_control_and_layout_characters_are_escaped_and_the_rest_kept(name, shown):
    assert printable(name) == shown
    assert printable(Path(name)) == shown
    assert printable(printable(name)) == printable(name)


def test_undecodable_bytes_of_a_file_name_show_as_the_bytes_they_are():
    raw = b"caf\xe9 \xff\xfe.png"  # Latin-1 bytes: not UTF-8
    assert printable(raw) == "caf\\xe9 \\xff\\xfe.png"
    assert printable(os.fsdecode(raw)) == "caf\\xe9 \\xff\\xfe.png"
    assert printable(Path(os.fsdecode(raw))) == "caf\\xe9 \\xff\\xfe.png"
    printable(os.fsdecode(raw)).encode("utf-8")  # printable in any UTF-8 output


def test_no_character_leaves_a_line_break_control_or_reordering_behind():
    shown = printable("".join(map(chr, range(0x3000))) + "\U0001f600\U000e0001")
    assert shown.splitlines() == [shown]
    shown.encode("utf-8")
    for c in set(shown):
        assert unicodedata.category(c) not in ("Cc", "Cs", "Zl", "Zp"), repr(c)
        assert unicodedata.bidirectional(c) not in ("LRE", "RLE", "LRO", "RLO", "PDF"), repr(c)
        assert unicodedata.bidirectional(c) not in ("LRI", "RLI", "FSI", "PDI"), repr(c)
    assert "\\x1b" in shown and "\\u202e" in shown


def test_other_values_are_shown_as_their_text():
    assert printable(7) == "7"
    assert printable(None) == "None"


def test_display_width_counts_terminal_columns():
    assert display_width("seven.png") == 9
    assert display_width("数字.png") == 8  # two wide characters
    assert display_width("e\u0301te") == 3  # a combining accent takes no column
    assert display_width("") == 0
