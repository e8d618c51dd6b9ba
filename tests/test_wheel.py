"""The wheel is the product: built, installed into a fresh virtualenv outside the repository,
and served from an empty folder, as an analyst would (issue 13).

The virtualenv shares nothing with the development one: pip installs the wheel and its
dependencies from the package index (or pip's cache), so a dependency missing from
``pyproject.toml`` or a file missing from the wheel fails here. Slow: about a minute with a
warm pip cache.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import sandbox_kit
from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
TOKEN = "wheel-test-token"


def _env(venv: Path, tmp: Path) -> dict[str, str]:
    """The environment of a user of the fresh virtualenv: nothing of the development one."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SANDBOX_", "JUPYTER", "VIRTUAL_ENV", "PYTHON", "CONDA"))
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
    env["JUPYTER_CONFIG_DIR"] = str(tmp / "jupyter-config")
    env["JUPYTER_RUNTIME_DIR"] = str(tmp / "jupyter-runtime")
    return env


def _run(
    *cmd: str | Path, env: dict[str, str], cwd: Path, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from this checkout the way pip builds it (isolated build)."""
    out = tmp_path_factory.mktemp("dist")
    done = _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, ROOT,
        env=dict(os.environ), cwd=out,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (built,) = out.glob("sandbox_kit-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtualenv, outside the repository, with the wheel (no extras) installed."""
    tmp = tmp_path_factory.mktemp("fresh")
    folder = tmp / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    env = _env(folder, tmp)
    done = _run(base, "-m", "venv", folder, env=env, cwd=tmp)
    assert done.returncode == 0, done.stderr
    done = _run(folder / "bin" / "python", "-m", "pip", "install", "-q", wheel, env=env, cwd=tmp)
    assert done.returncode == 0, done.stderr
    yield folder


def test_the_wheel_carries_the_app(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert wheel.name.startswith(f"sandbox_kit-{sandbox_kit.__version__}-")
    assert "sandbox_kit/data/dashboard.ipynb" in names
    assert {f"sandbox_kit/data/examples/{n}" for n in ("dmo.py", "rmo.py", "so.py")} <= names
    assert "sandbox_kit/migrations/versions/0004_audit.py" in names
    assert "sandbox_kit/py.typed" in names
    # Installing it enables the HTTP API in every Jupyter Server (issue 16).
    data = f"sandbox_kit-{sandbox_kit.__version__}.data/data/etc/jupyter/jupyter_server_config.d"
    assert f"{data}/sandbox_kit.json" in names
    assert not any(n.startswith(("tests/", "bench/", "notebooks/", "models/")) for n in names)
    metadata = zipfile.ZipFile(wheel).read(
        f"sandbox_kit-{sandbox_kit.__version__}.dist-info/METADATA"
    )
    requires = [
        line for line in metadata.decode().splitlines() if line.startswith("Requires-Dist:")
    ]
    psycopg = [line for line in requires if "psycopg" in line]
    assert psycopg and all("extra ==" in line for line in psycopg)  # only in extras


def test_a_fresh_install_serves_the_dashboard_from_an_empty_folder(
    venv: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    env = _env(venv, tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [str(venv / "bin" / "sandbox-kit"), "serve", "--port", str(port), "--token", TOKEN],
        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            output = (tmp_path / "serve.log").read_text(errors="replace")
            assert server.poll() is None, f"serve exited {server.returncode}:\n{output}"
            assert time.monotonic() < deadline, f"serve did not listen:\n{output}"
            time.sleep(0.3)

        status, body = _get(port, f"/?token={TOKEN}")
        assert status == 200, body[:2000]
        assert "application/vnd.jupyter.widget-view+json" in body  # the dashboard was shown
        assert "There was an error when executing cell" not in body
        for path in ("/", "/?token=wrong", "/voila/render/dashboard.ipynb"):
            assert _get(port, path)[0] in (302, 403), path
        status, body = _get(port, f"/sandbox/api/models?token={TOKEN}")  # the HTTP API
        assert status == 200, body[:2000]
        assert _get(port, "/sandbox/api/models")[0] == 403

        listed = _run(venv / "bin" / "sandbox-kit", "models", "--json", env=env, cwd=folder)
        assert listed.returncode == 0, listed.stderr
        models = json.loads(listed.stdout)
        assert sorted((m["model_type"], m["name"], m["status"]) for m in models) == [
            ("DMO", "dmo", "active"),
            ("RMO", "rmo", "active"),
            ("SO", "so", "active"),
        ]
        assert all(m["created_by"] for m in models)
        assert (folder / "sandbox.db").is_file()  # the empty folder became the home
    finally:
        server.terminate()
        server.wait(60)
        log.close()


def test_postgres_is_an_extra_named_by_the_error(venv: Path, tmp_path: Path) -> None:
    env = _env(venv, tmp_path)
    assert _run(venv / "bin" / "python", "-c", "import psycopg", env=env, cwd=tmp_path).returncode
    env["SANDBOX_DB_URL"] = "postgresql+psycopg://user:pw@127.0.0.1:5432/team"
    done = _run(venv / "bin" / "sandbox-kit", "jobs", env=env, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("Error: postgresql+psycopg://user:***@127.0.0.1:5432/team")
    assert "pip install 'sandbox_kit[postgres]'" in done.stderr


def test_version_and_examples_from_the_wheel(venv: Path, tmp_path: Path) -> None:
    env = _env(venv, tmp_path)
    version = _run(venv / "bin" / "sandbox-kit", "--version", env=env, cwd=tmp_path)
    assert version.stdout.strip() == f"sandbox-kit {sandbox_kit.__version__}"
    done = _run(venv / "bin" / "sandbox-kit", "examples", "mine", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for name in ("dmo.py", "rmo.py", "so.py"):
        copied = tmp_path / "mine" / name
        assert copied.read_bytes() == (ROOT / "models" / "examples" / name).read_bytes()


def test_an_editable_install_keeps_working(venv: Path, tmp_path: Path) -> None:
    # Last in this module: it replaces the wheel in the shared virtualenv.
    env = _env(venv, tmp_path)
    python = venv / "bin" / "python"
    done = _run(
        python, "-m", "pip", "install", "-q", "--no-deps", "-e", ROOT, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    code = (
        "import json, sandbox_kit, sandbox_kit.assets as a; print(json.dumps(["
        "sandbox_kit.__file__, str(a.dashboard_notebook()), str(a.examples_folder())]))"
    )
    located = _run(python, "-c", code, env=env, cwd=tmp_path)
    assert located.returncode == 0, located.stderr
    module, notebook, examples = json.loads(located.stdout)
    assert Path(module).resolve() == ROOT / "sandbox_kit" / "__init__.py"
    assert Path(notebook) == ROOT / "notebooks" / "dashboard.ipynb"
    assert Path(examples) == ROOT / "models" / "examples"
    # The editable install enables the HTTP API too (shared-data, issue 16).
    assert (venv / "etc/jupyter/jupyter_server_config.d/sandbox_kit.json").is_file()


def _get(port: int, path: str) -> tuple[int, str]:
    """One GET, redirects not followed; Voilà renders the page as the notebook runs."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()
