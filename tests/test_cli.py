"""Tests for the ``sandbox-kit`` command line, run as real subprocesses on SQLite."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cli

SOURCE = '"""A DMO model: é ü 中文."""\n\nimport json\n\nprint(json.dumps({"ok": True}))\n'
OTHER = '"""Another one."""\nprint("other")\n'
JSON_KEYS = {
    "id",
    "model_type",
    "name",
    "version",
    "status",
    "active",
    "sha256",
    "description",
    "original_filename",
    "size",
    "created_at",
}
# The CLI must not pick up a database from the environment running the tests.
NO_DB = {"SANDBOX_DB_URL": ""}


def run(*args: str, home: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {**NO_DB, **kwargs.pop("env", {})}
    return cli(*args, home=home, env=env, **kwargs)


def ok(*args: str, home: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = run(*args, home=home, **kwargs)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(text.encode("utf-8"))
    return path


def upload(home: Path, path: Path, *extra: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ok("upload", str(path), *extra, "--json", home=home).stdout)
    return data


def models(home: Path, *extra: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(ok("models", "--json", *extra, home=home).stdout)
    return data


def statuses(home: Path) -> dict[int, str]:
    return {m["id"]: m["status"] for m in models(home)}


def assert_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stderr.startswith("Error: "), done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr


# --- upload -------------------------------------------------------------------------------------


def test_upload_prints_id_last(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path, "dmo.py", SOURCE)

    done = ok("upload", str(path), "--type", "dmo", "--description", "hello", home=home)

    lines = done.stdout.strip().splitlines()
    assert lines[-1].isdigit()
    assert "dmo v1" in lines[0]
    listed = models(home)
    assert [m["id"] for m in listed] == [int(lines[-1])]
    assert listed[0]["model_type"] == "DMO"
    assert listed[0]["description"] == "hello"
    assert listed[0]["status"] == "active"
    stored = list((home / "models").iterdir())
    assert len(stored) == 1
    assert stored[0].read_bytes() == path.read_bytes()


def test_upload_json_shape(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path, "my_model.py", SOURCE)

    data = upload(home, path, "--type", "SO", "--name", "renamed", "--description", "d")

    assert set(data) == JSON_KEYS
    assert isinstance(data["id"], int)
    assert data["model_type"] == "SO"
    assert data["name"] == "renamed"
    assert data["version"] == 1
    assert data["status"] == "active"
    assert data["active"] is True
    assert data["sha256"] == hashlib.sha256(SOURCE.encode()).hexdigest()
    assert data["description"] == "d"
    assert data["original_filename"] == "my_model.py"
    assert data["size"] == len(SOURCE.encode())
    assert datetime.fromisoformat(data["created_at"]).utcoffset() is not None


def test_upload_no_activate_and_versions(home: Path, tmp_path: Path) -> None:
    v1 = upload(home, write(tmp_path / "a", "dmo.py", SOURCE), "--type", "DMO")
    v2 = upload(home, write(tmp_path / "b", "dmo.py", OTHER), "--type", "DMO", "--no-activate")

    assert (v1["version"], v2["version"]) == (1, 2)
    assert v2["status"] == "inactive"
    assert v2["active"] is False
    assert statuses(home) == {v1["id"]: "active", v2["id"]: "inactive"}


# --- listing and showing ------------------------------------------------------------------------


def test_models_json_is_an_array(home: Path, tmp_path: Path) -> None:
    assert models(home) == []
    empty = ok("models", home=home)
    assert "No models yet" in empty.stdout

    first = upload(home, write(tmp_path / "a", "dmo.py", SOURCE), "--type", "DMO")
    listed = models(home)
    assert isinstance(listed, list)
    assert listed == [first]

    table = ok("models", home=home).stdout
    assert "dmo" in table
    assert "DMO" in table
    assert first["sha256"][:12] in table


def test_models_filters(home: Path, tmp_path: Path) -> None:
    d1 = upload(home, write(tmp_path / "a", "dmo.py", SOURCE), "--type", "DMO")
    d2 = upload(home, write(tmp_path / "b", "dmo.py", OTHER), "--type", "DMO")
    so = upload(home, write(tmp_path / "c", "so.py", SOURCE), "--type", "SO")
    ok("archive", str(d1["id"]), home=home)

    def ids(*extra: str) -> set[int]:
        return {m["id"] for m in models(home, *extra)}

    assert ids("--type", "DMO") == {d1["id"], d2["id"]}
    assert ids("--type", "so") == {so["id"]}
    assert ids("--type", "RMO") == set()
    assert ids("--status", "active") == {d2["id"], so["id"]}
    assert ids("--status", "archived") == {d1["id"]}
    assert ids("--status", "inactive") == set()
    assert ids("--type", "DMO", "--status", "active") == {d2["id"]}


def test_show_source_prints_exact_source(home: Path, tmp_path: Path) -> None:
    model = upload(home, write(tmp_path, "dmo.py", SOURCE), "--type", "DMO")

    done = ok("show", str(model["id"]), "--source", home=home)

    assert done.stdout == SOURCE


def test_show_json_and_text(home: Path, tmp_path: Path) -> None:
    model = upload(home, write(tmp_path, "dmo.py", SOURCE), "--type", "DMO", "--description", "x")

    shown = json.loads(ok("show", str(model["id"]), "--json", home=home).stdout)
    assert shown == model
    assert set(shown) == JSON_KEYS

    text = ok("show", str(model["id"]), home=home).stdout
    assert model["sha256"] in text
    assert "original_filename" in text


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([("archive", 2)], {1: "inactive", 2: "archived"}),
        ([("activate", 1)], {1: "active", 2: "inactive"}),
        ([("archive", 2), ("restore", 2)], {1: "inactive", 2: "inactive"}),
        ([("archive", 2), ("restore", 2), ("activate", 2)], {1: "inactive", 2: "active"}),
        ([("archive", 1), ("restore", 1), ("activate", 1)], {1: "active", 2: "inactive"}),
    ],
)
def test_status_changes(
    home: Path, tmp_path: Path, steps: list[tuple[str, int]], expected: dict[int, str]
) -> None:
    v1 = upload(home, write(tmp_path / "a", "dmo.py", SOURCE), "--type", "DMO")
    v2 = upload(home, write(tmp_path / "b", "dmo.py", OTHER), "--type", "DMO")
    ids = {1: v1["id"], 2: v2["id"]}

    for verb, which in steps:
        done = ok(verb, str(ids[which]), home=home)
        assert f"Model {ids[which]} " in done.stdout

    assert statuses(home) == {ids[k]: v for k, v in expected.items()}


def test_activate_archived_is_an_error(home: Path, tmp_path: Path) -> None:
    model = upload(home, write(tmp_path, "dmo.py", SOURCE), "--type", "DMO")
    ok("archive", str(model["id"]), home=home)

    assert_error(run("activate", str(model["id"]), home=home), "archived")
    assert statuses(home) == {model["id"]: "archived"}


# --- delete -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stdin", ["", "y\n", "yes\n"])
def test_delete_without_yes_and_no_tty_refuses(home: Path, tmp_path: Path, stdin: str) -> None:
    model = upload(home, write(tmp_path, "dmo.py", SOURCE), "--type", "DMO")

    done = run("delete", str(model["id"]), home=home, stdin=stdin)

    assert_error(done, "--yes")
    assert models(home) == [model]
    assert len(list((home / "models").iterdir())) == 1


def test_delete_with_yes(home: Path, tmp_path: Path) -> None:
    keep = upload(home, write(tmp_path / "a", "dmo.py", SOURCE), "--type", "DMO")
    gone = upload(home, write(tmp_path / "b", "so.py", OTHER), "--type", "SO")

    done = ok("delete", str(gone["id"]), "--yes", home=home)

    assert f"Deleted model {gone['id']}" in done.stdout
    assert models(home) == [keep]
    assert len(list((home / "models").iterdir())) == 1
    assert_error(run("show", str(gone["id"]), home=home), f"no model with id {gone['id']}")


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("show", "4242"),
        ("show", "4242", "--source"),
        ("activate", "4242"),
        ("archive", "4242"),
        ("restore", "4242"),
        ("delete", "4242", "--yes"),
    ],
)
def test_unknown_model_id_is_a_clean_error(home: Path, args: tuple[str, ...]) -> None:
    done = run(*args, home=home)
    assert_error(done, "4242", "model")
    assert done.stderr.count("\n") == 1  # one sentence, one line


def test_debug_shows_traceback(home: Path) -> None:
    done = run("--debug", "show", "4242", home=home)
    assert done.returncode != 0
    assert "Traceback" in done.stderr
    assert "NotFoundError" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("upload", "x.py"),
        ("upload", "x.py", "--type", "XYZ"),
        ("frobnicate",),
        ("show", "abc"),
        ("models", "--status", "deleted"),
        ("delete",),
        ("db",),
        (),
    ],
    ids=[
        "missing-type",
        "unknown-type",
        "unknown-command",
        "bad-id",
        "bad-status",
        "missing-id",
        "missing-db-action",
        "no-command",
    ],
)
def test_bad_usage_exits_2(home: Path, args: tuple[str, ...]) -> None:
    done = run(*args, home=home)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "usage:" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (home / "sandbox.db").exists()


def test_syntax_error_upload(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path, "broken_model.py", "x = 1\ndef f(:\n    pass\n")

    done = run("upload", str(path), "--type", "DMO", home=home)

    assert_error(done, "broken_model.py", "line 2")
    assert models(home) == []
    assert list((home / "models").iterdir()) == []


@pytest.mark.parametrize(
    ("name", "data", "word"),
    [
        ("model.txt", b"print(1)\n", ".py"),
        ("nul.py", b"print(1)\n\x00", "NUL"),
        ("missing.py", None, "no such file"),
    ],
)
def test_rejected_upload_is_a_clean_error(
    home: Path, tmp_path: Path, name: str, data: bytes | None, word: str
) -> None:
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)

    done = run("upload", str(path), "--type", "RMO", home=home)

    assert_error(done, word)
    assert models(home) == []


# --- home -------------------------------------------------------------------------------------


def test_sandbox_home_env_is_honoured(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "src", "dmo.py", SOURCE)
    model = upload(home, path, "--type", "DMO")  # cli() sets SANDBOX_HOME=home, no --home

    assert (home / "sandbox.db").is_file()
    assert len(list((home / "models").iterdir())) == 1
    assert models(home) == [model]


def test_home_option_wins_over_env(home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    path = write(tmp_path / "src", "dmo.py", SOURCE)

    done = ok("--home", str(other), "upload", str(path), "--type", "DMO", "--json", home=home)

    model = json.loads(done.stdout)
    assert (other / "sandbox.db").is_file()
    assert len(list((other / "models").iterdir())) == 1
    assert not (home / "sandbox.db").exists()
    assert not (home / "models").exists()
    listed = json.loads(ok("--home", str(other), "models", "--json", home=home).stdout)
    assert listed == [model]
    assert models(home) == []


def test_module_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sandbox_kit", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "usage: sandbox-kit" in done.stdout
    for command in ("upload", "models", "show", "activate", "archive", "restore", "delete", "db"):
        assert command in done.stdout
