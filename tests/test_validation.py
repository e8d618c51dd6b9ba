"""Tests for sandbox_kit.validation: upload names, encodings, Trojan Source and syntax checks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sandbox_kit import validation
from sandbox_kit.errors import ValidationError
from sandbox_kit.validation import (
    MAX_UPLOAD_BYTES,
    ValidatedSource,
    safe_filename,
    validate_upload,
)

MB = 1024 * 1024


def _upload(tmp_path: Path, name: str, data: bytes, **kwargs: int) -> ValidatedSource:
    # Round-trip through a real file so the bytes are exactly what a disk upload would carry.
    path = tmp_path / name
    path.write_bytes(data)
    return validate_upload(path.name, path.read_bytes(), **kwargs)


def _rejected(tmp_path: Path, name: str, data: bytes, **kwargs: int) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        _upload(tmp_path, name, data, **kwargs)
    return info.value


# --- safe_filename -------------------------------------------------------------------------------

NASTY_NAMES = [
    "../../etc/passwd.py",
    "\uff0e\uff0e\uff0f\uff0e\uff0e\uff0fevil.py",
    "\u2025\uff0fevil.py",
    "a\x00b.py",
    "dir\\win.py",
    "C:\\Users\\x\\..\\win.py",
    "  .hidden.py",
    "...py",
    ". . .py",
    "a..b.py",
    "x" * 300 + ".py",
    "\u202eyp.exe",
    "\u202eyp.\u202d.py",
    "a\u200b.\u200b.b.py",
    "rm -rf $(x).py",
    "résumé.py",
    "my\t model\n.py",
]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("dmo.py", "dmo.py"),
        ("../../etc/passwd.py", "passwd.py"),
        ("\uff0e\uff0e\uff0f\uff0e\uff0e\uff0fevil.py", "evil.py"),
        ("\u2025\uff0fevil.py", "evil.py"),
        ("a\x00b.py", "ab.py"),
        ("dir\\win.py", "win.py"),
        ("C:\\Users\\x\\..\\win.py", "win.py"),
        ("  .hidden.py", "hidden.py"),
        ("...py", "py"),
        ("a..b.py", "a.b.py"),
        ("a\u200b.\u200b.b.py", "a.b.py"),
        ("résumé.py", "résumé.py"),
        ("модель.py", "модель.py"),
        ("\u202eyp.exe", "yp.exe"),
        ("my\t model\n.py", "my model .py"),
        ("rm -rf $(x).py", "rm -rf __x_.py"),
        ("con:.py", "con_.py"),
        ("\uff44\uff4d\uff4f.py", "dmo.py"),
    ],
)
def test_safe_filename_table(raw: str, expected: str) -> None:
    assert safe_filename(raw) == expected


@pytest.mark.parametrize("raw", NASTY_NAMES)
def test_safe_filename_never_escapes(raw: str) -> None:
    name = safe_filename(raw)
    assert "/" not in name
    assert "\\" not in name
    assert "\x00" not in name
    assert ".." not in name
    assert not name.startswith((".", " "))
    assert name not in (".", "..")
    assert 0 < len(name) <= 100


def test_safe_filename_caps_length_keeping_extension() -> None:
    name = safe_filename("x" * 300 + ".py")
    assert len(name) == 100
    assert name.endswith(".py")
    assert safe_filename("y" * 300) == "y" * 100


@pytest.mark.parametrize(
    "raw", ["", "   ", ".", "..", "/", "x/", "\\", "\x00\x01", "\u202e", ". ."]
)
def test_safe_filename_empty_result_rejected(raw: str) -> None:
    with pytest.raises(ValidationError) as info:
        safe_filename(raw)
    assert info.value.reason == "file name is empty after sanitising"


# --- accepted uploads ----------------------------------------------------------------------------


def test_valid_file_with_bom_passes(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbfdef objective(x):\n    return x * 2\n"
    result = _upload(tmp_path, "dmo.py", data)
    assert result == ValidatedSource(
        filename="dmo.py",
        stem="dmo",
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )


@pytest.mark.parametrize(
    "cookie",
    [
        b"# -*- coding: utf-8 -*-",
        b"# coding=utf8",
        b"# vim: set fileencoding=UTF_8 :",
        b"# coding: utf-8-sig",
    ],
)
def test_utf8_coding_cookie_accepted(tmp_path: Path, cookie: bytes) -> None:
    data = b"#!/usr/bin/env python3\n" + cookie + b"\ns = 'r\xc3\xa9sum\xc3\xa9'\n"
    assert _upload(tmp_path, "m.py", data).data == data


def test_extension_is_case_insensitive(tmp_path: Path) -> None:
    result = _upload(tmp_path, "Model.PY", b"x = 1\n")
    assert (result.filename, result.stem) == ("Model.PY", "Model")


def test_upload_name_is_sanitised() -> None:
    result = validate_upload("../../etc/evil.py", b"x = 1\n")
    assert (result.filename, result.stem) == ("evil.py", "evil")


def test_exactly_at_limit_passes(tmp_path: Path) -> None:
    data = b"x = 1\n"
    assert _upload(tmp_path, "m.py", data, max_bytes=len(data)).size == len(data)


# --- rejected uploads ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["model.txt", "model.py.exe", "model", "model.pyc", "model.pyw"])
def test_wrong_extension_rejected(tmp_path: Path, name: str) -> None:
    err = _rejected(tmp_path, name, b"x = 1\n")
    assert err.reason == "only .py and .ipynb files can be uploaded"
    assert err.filename == name


@pytest.mark.parametrize("data", [b"", b"   \n\t\r\n  ", b"\xef\xbb\xbf", b"\xef\xbb\xbf \n"])
def test_empty_file_rejected(tmp_path: Path, data: bytes) -> None:
    err = _rejected(tmp_path, "m.py", data)
    assert err.reason == "file is empty"
    assert err.filename == "m.py"


def test_over_small_limit_rejected(tmp_path: Path) -> None:
    err = _rejected(tmp_path, "m.py", b"x = 12345\n\n", max_bytes=10)
    assert err.reason == "file is 11 bytes; the limit is 10 bytes"


def test_over_default_limit_rejected(tmp_path: Path) -> None:
    err = _rejected(tmp_path, "big.py", b"#" * (11 * MB))
    assert MAX_UPLOAD_BYTES == 10 * MB
    assert str(err) == "big.py: file is 11.0 MB; the limit is 10.0 MB"


def test_nul_bytes_rejected(tmp_path: Path) -> None:
    err = _rejected(tmp_path, "m.py", b"x = 1\ny = '\x00'\n")
    assert err.reason == "file contains NUL bytes"
    assert err.line == 2


def test_latin1_bytes_rejected(tmp_path: Path) -> None:
    err = _rejected(tmp_path, "m.py", b"x = 1\ns = 'r\xe9sum\xe9'\n")
    assert err.reason == "file is not valid UTF-8 (byte 0xe9 at offset 12)"
    assert err.line == 2


def test_utf7_cookie_rejected(tmp_path: Path) -> None:
    # Under utf-7, "+AAo-" decodes to a newline, so the "comment" below would run print(...).
    data = b"# -*- coding: utf-7 -*-\n# harmless comment +AAo-print('owned')\n"
    err = _rejected(tmp_path, "m.py", data)
    assert err.reason == ("coding cookie 'utf-7' is not allowed; only UTF-8 sources are accepted")
    assert err.line == 1


@pytest.mark.parametrize("cookie", [b"# coding: latin-1", b"# vim: fileencoding=cp1252"])
def test_other_cookie_on_line_two_rejected(tmp_path: Path, cookie: bytes) -> None:
    err = _rejected(tmp_path, "m.py", b"#!/usr/bin/env python3\r\n" + cookie + b"\r\nx = 1\r\n")
    assert err.reason.startswith("coding cookie '")
    assert err.line == 2


def test_cookie_on_line_three_ignored(tmp_path: Path) -> None:
    data = b"x = 1\ny = 2\n# coding: latin-1\n"
    assert _upload(tmp_path, "m.py", data).size == len(data)


@pytest.mark.parametrize(
    "char",
    [
        "\u202a",
        "\u202b",
        "\u202c",
        "\u202d",
        "\u202e",
        "\u2066",
        "\u2067",
        "\u2068",
        "\u2069",
        "\u200e",
        "\u200f",
        "\u061c",
    ],
)
def test_bidi_control_rejected(tmp_path: Path, char: str) -> None:
    data = f'x = 1\ns = "a{char}b"\n'.encode()
    err = _rejected(tmp_path, "m.py", data)
    assert err.reason == f"bidirectional control character U+{ord(char):04X}"
    assert (err.line, err.column) == (2, 7)


def test_bidi_column_ignores_bom(tmp_path: Path) -> None:
    err = _rejected(tmp_path, "m.py", "\ufeff#\u202e\n".encode())
    assert (err.line, err.column) == (1, 2)


@pytest.mark.parametrize(
    ("data", "line", "column"),
    [
        (b"x = 1\ny = (\n", 2, 5),
        (b"def f(:\n", 1, 7),
        ("x = 1\ns = 'éé' )\n".encode(), 2, 10),
        (b"\xef\xbb\xbfx = = 1\n", 1, 5),
    ],
)
def test_syntax_error_reports_position(tmp_path: Path, data: bytes, line: int, column: int) -> None:
    err = _rejected(tmp_path, "dmo.py", data)
    assert (err.filename, err.line, err.column) == ("dmo.py", line, column)
    assert str(err).startswith(f"dmo.py, line {line}, column {column}: ")


def test_syntax_check_does_not_execute(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    data = f"open({str(marker)!r}, 'w').close()\n".encode()
    _upload(tmp_path, "m.py", data)
    assert not marker.exists()


@pytest.mark.parametrize(
    "source",
    [
        "(" * 300,
        "[" * 100000,
        "-" * 1_000_000 + "1",
        "x = " + "1+" * 200000 + "1",
        "x = (" + "(" * 150 + ")" * 151 + "\n",
    ],
    ids=["parens", "brackets", "unary", "binop", "nested-ok"],
)
def test_hostile_sources_fail_cleanly(tmp_path: Path, source: str) -> None:
    data = source.encode()
    try:
        result = _upload(tmp_path, "deep.py", data)
    except ValidationError as err:
        assert err.filename == "deep.py"
        assert err.reason
    else:
        assert result.data == data


@pytest.mark.parametrize("source", ["-" * 1_000_000 + "1", "x = " + "1+" * 200000 + "1"])
def test_too_deep_message(tmp_path: Path, source: str) -> None:
    err = _rejected(tmp_path, "deep.py", source.encode())
    assert err.reason == "source is too deeply nested or too large to compile"


# --- failures of the checker itself (child script swapped out) ------------------------------------


@pytest.mark.parametrize(
    ("child", "reason"),
    [
        ("import os; os.abort()", "syntax check failed: the compiler crashed (signal 6)"),
        ("import sys; sys.exit(3)", "syntax check failed: the compiler crashed (exit status 3)"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGXCPU)", "syntax check took too long"),
        ("import time; time.sleep(30)", "syntax check took too long"),
    ],
    ids=["abort", "exit", "cpu-limit", "wall-timeout"],
)
def test_checker_failures_are_validation_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, child: str, reason: str
) -> None:
    # No core dump from the deliberate crashes.
    no_core = "import resource; resource.setrlimit(resource.RLIMIT_CORE, (0, 0))\n"
    monkeypatch.setattr(validation, "_CHILD", no_core + child)
    monkeypatch.setattr(validation, "_SYNTAX_WALL_SECONDS", 1.0)
    err = _rejected(tmp_path, "m.py", b"x = 1\n")
    assert err.reason == reason


# --- order of checks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("m.txt", b"", "only .py and .ipynb files can be uploaded"),
        ("m.py", b"\x00" * 20, "file is 20 bytes; the limit is 19 bytes"),
        ("m.py", b"  ", "file is empty"),
        ("m.py", b"\xe9\x00", "file contains NUL bytes"),
        ("m.py", b"# coding: utf-7\n\xe9", "file is not valid UTF-8 (byte 0xe9 at offset 16)"),
        (
            "m.py",
            "# coding: utf-7 \u202e".encode(),
            "coding cookie 'utf-7' is not allowed; only UTF-8 sources are accepted",
        ),
        ("m.py", "def (\u202e".encode(), "bidirectional control character U+202E"),
    ],
)
def test_check_order(tmp_path: Path, name: str, data: bytes, reason: str) -> None:
    assert _rejected(tmp_path, name, data, max_bytes=19).reason == reason
