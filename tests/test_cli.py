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

from sandbox_kit import Sandbox
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
    "created_by",
    "threads",  # its header's declarations (issue 15)
    "tokens",
    "scratch",  # a %%sandbox cell's code (issue 14)
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


def seed(home: Path, *uploads: tuple[str, str, str, bool]) -> list[dict[str, Any]]:
    """Store models through the library (fast), as ``(filename, type, source, activate)``."""
    sb = Sandbox(home=home, db_url=f"sqlite:///{home / 'sandbox.db'}")
    try:
        return [
            sb.upload(text.encode(), kind, filename=name, activate=activate).to_dict()
            for name, kind, text, activate in uploads
        ]
    finally:
        sb.close()


def stored(home: Path) -> list[dict[str, Any]]:
    """The models in ``home`` as the library sees them (no CLI round trip)."""
    sb = Sandbox(home=home, db_url=f"sqlite:///{home / 'sandbox.db'}")
    try:
        return [m.to_dict() for m in sb.models()]
    finally:
        sb.close()


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

    path.write_text(OTHER, encoding="utf-8")
    v2 = upload(home, path, "--type", "SO", "--name", "renamed", "--no-activate")
    assert (v2["version"], v2["status"], v2["active"]) == (2, "inactive", False)
    assert statuses(home) == {data["id"]: "active", v2["id"]: "inactive"}


# --- listing and showing ------------------------------------------------------------------------


def test_models_json_and_filters(home: Path) -> None:
    assert models(home) == []
    assert "No models yet" in ok("models", home=home).stdout
    d1, d2, so = seed(
        home,
        ("dmo.py", "DMO", SOURCE, True),
        ("dmo.py", "DMO", OTHER, True),
        ("so.py", "SO", SOURCE, True),
    )
    sb = Sandbox(home=home, db_url=f"sqlite:///{home / 'sandbox.db'}")
    sb.archive(d1["id"])
    sb.close()

    listed = models(home)
    assert isinstance(listed, list)
    assert sorted(listed, key=lambda m: m["id"]) == [
        {**d1, "status": "archived", "active": False},
        d2,
        so,
    ]
    assert all(set(m) == JSON_KEYS for m in listed)

    def ids(*extra: str) -> set[int]:
        return {m["id"] for m in models(home, *extra)}

    assert ids("--type", "dmo") == {d1["id"], d2["id"]}
    assert ids("--type", "RMO") == set()
    assert ids("--status", "active") == {d2["id"], so["id"]}
    assert ids("--status", "archived") == {d1["id"]}
    assert ids("--type", "DMO", "--status", "active") == {d2["id"]}

    table = ok("models", "--type", "SO", home=home).stdout
    assert so["sha256"][:12] in table
    assert d2["sha256"][:12] not in table


def test_show_source_prints_exact_source(home: Path) -> None:
    (model,) = seed(home, ("dmo.py", "DMO", SOURCE, True))

    done = ok("show", str(model["id"]), "--source", home=home)

    assert done.stdout == SOURCE


def test_show_json_and_text(home: Path) -> None:
    (model,) = seed(home, ("dmo.py", "DMO", SOURCE, True))

    shown = json.loads(ok("show", str(model["id"]), "--json", home=home).stdout)
    assert shown == model
    assert set(shown) == JSON_KEYS

    text = ok("show", str(model["id"]), home=home).stdout
    assert model["sha256"] in text
    assert "original_filename" in text


def test_status_changes(home: Path) -> None:
    v1, v2 = seed(home, ("dmo.py", "DMO", SOURCE, True), ("dmo.py", "DMO", OTHER, True))
    one, two = v1["id"], v2["id"]
    assert statuses(home) == {one: "inactive", two: "active"}

    done = ok("archive", str(two), home=home)
    assert done.stdout.strip() == f"Model {two} (DMO dmo v2) is now archived."
    assert statuses(home) == {one: "inactive", two: "archived"}

    assert_error(run("activate", str(two), home=home), "archived", "restore")
    done = ok("restore", str(two), home=home)
    assert done.stdout.strip() == f"Model {two} (DMO dmo v2) is now inactive."
    done = ok("activate", str(one), home=home)
    assert done.stdout.strip() == f"Model {one} (DMO dmo v1) is now active."
    assert statuses(home) == {one: "active", two: "inactive"}


# --- delete -------------------------------------------------------------------------------------


def test_delete_without_yes_and_no_tty_refuses(home: Path) -> None:
    (model,) = seed(home, ("dmo.py", "DMO", SOURCE, True))

    # Even a "y" on a pipe is no confirmation: only a terminal can confirm.
    done = run("delete", str(model["id"]), home=home, stdin="y\n")

    assert_error(done, "--yes")
    assert stored(home) == [model]
    assert len(list((home / "models").iterdir())) == 1


def test_delete_with_yes(home: Path) -> None:
    keep, gone = seed(home, ("dmo.py", "DMO", SOURCE, True), ("so.py", "SO", OTHER, True))

    done = ok("delete", str(gone["id"]), "--yes", home=home)

    assert f"Deleted model {gone['id']}" in done.stdout
    assert models(home) == [keep]
    assert len(list((home / "models").iterdir())) == 1


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("show", "4242", "--source"),
        ("archive", "4242"),
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
    assert list((home / "models").iterdir()) == []
    assert stored(home) == []


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
    assert list((home / "models").iterdir()) == []
    assert stored(home) == []


# --- home -------------------------------------------------------------------------------------


def test_sandbox_home_env_is_honoured(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "src", "dmo.py", SOURCE)
    model = upload(home, path, "--type", "DMO")  # cli() sets SANDBOX_HOME=home, no --home

    assert (home / "sandbox.db").is_file()
    assert len(list((home / "models").iterdir())) == 1
    assert stored(home) == [model]


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
