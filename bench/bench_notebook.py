"""Notebook models (issue 14): a trivial notebook model, ``run()`` to ``success``, against
papermill executing the same notebook with the same parameters, in this process (imports
already paid, as in an analyst's notebook) and as the ``papermill`` command (as in a script).

All start a fresh kernel per run; the sandbox adds its supervisor, the jail, the registry and
the runner's own imports (nbformat, nbclient: the kernel boots meanwhile). All rounds run
interleaved in one process, median of 5.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import nbformat
import papermill
from common import median, scratch

ROUNDS = 5
PARAMETERS = {"load_scale": 1.1}


def notebook(folder: Path) -> Path:
    """Two cells: defaults tagged ``parameters``, and a cell that uses them."""
    nb = nbformat.v4.new_notebook()
    defaults = nbformat.v4.new_code_cell("load_scale = 1.0")
    defaults.metadata["tags"] = ["parameters"]
    nb.cells = [defaults, nbformat.v4.new_code_cell("print('demand', 1000 * load_scale)")]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = folder / "trivial.ipynb"
    nbformat.write(nb, path)
    return path


def with_papermill(path: Path, out: Path) -> float:
    t0 = time.perf_counter()
    papermill.execute_notebook(
        str(path), str(out), parameters=PARAMETERS, kernel_name="python3", progress_bar=False
    )
    return time.perf_counter() - t0


def papermill_command(path: Path, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "papermill", str(path), str(out), "-k", "python3"]
        + [arg for k, v in PARAMETERS.items() for arg in ("-p", k, str(v))]
        + ["--no-progress-bar"],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t0


def in_sandbox(sb: object, model_id: int) -> float:
    t0 = time.perf_counter()
    job = sb.run(model_id, config=PARAMETERS)  # type: ignore[attr-defined]
    info = job.wait(timeout=300, poll=0.01)
    elapsed = time.perf_counter() - t0
    assert info.status.value == "success", (info.status, info.reason)
    return elapsed


def main() -> None:
    sb, home = scratch()
    path = notebook(home)
    model = sb.upload(path, "DMO")
    out = home / "papermill-output.ipynb"
    with_papermill(path, out), papermill_command(path, out), in_sandbox(sb, model.id)  # warm up
    rounds: dict[str, list[float]] = {"in-process": [], "command": [], "sandbox": []}
    for _ in range(ROUNDS):
        rounds["in-process"].append(with_papermill(path, out))
        rounds["command"].append(papermill_command(path, out))
        rounds["sandbox"].append(in_sandbox(sb, model.id))
    inline, command, ours = (median(rounds[k]) for k in ("in-process", "command", "sandbox"))
    level = sb.jobs(limit=1)[0].isolation
    print(
        f"notebook: papermill in-process {inline * 1000:.0f} ms, papermill command "
        f"{command * 1000:.0f} ms, sandbox run() to success {ours * 1000:.0f} ms "
        f"(isolation {level}; median of {ROUNDS})"
    )
    print(
        f"notebook: ratio {ours / inline:.2f} to papermill in-process, "
        f"{ours / command:.2f} to the papermill command"
    )
    sb.close()


if __name__ == "__main__":
    main()
