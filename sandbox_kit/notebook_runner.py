"""Run a notebook model inside its job: ``python -u notebook_runner.py model.ipynb``.

The supervisor starts this file with the model's interpreter, inside the jail, in place of a
script. It needs only the standard library, ``nbclient``, ``nbformat`` and ``ipykernel`` in that
interpreter (it imports nothing of sandbox_kit), and:

- starts its own kernel (this interpreter, ``ipykernel``) with every Jupyter directory inside the
  job folder, so no kernel of the caller is ever used;
- injects the ``CONFIG`` keys as a parameters cell after the cell tagged ``parameters``, or at
  the top when none is (papermill's convention), tagged ``injected-parameters``;
- prints each cell's output as it is produced (streams to stdout/stderr, other outputs as their
  ``text/plain``), between ``[cell N] start`` and ``[cell N] done in S s`` markers;
- saves the executed notebook as ``$SANDBOX_RESULT_DIR/executed.ipynb``, also after a failure;
- on a failing cell prints ``notebook cell N failed: <last line of the error>`` as its last
  stderr line and exits with status 1.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["EXECUTED_NAME", "FAILURE_PREFIX", "KERNEL_NAME", "main", "parameters_source"]

#: The executed notebook's name in the result folder.
EXECUTED_NAME = "executed.ipynb"
#: The start of the last stderr line of a failing notebook (the supervisor reads it).
FAILURE_PREFIX = "notebook cell "
#: The kernel spec the runner writes into the job folder.
KERNEL_NAME = "sandbox-python"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def parameters_source(config: dict[str, Any]) -> str:
    """The source of the injected parameters cell: one ``name = value`` line per key.

    Keys that are not Python identifiers are left out (a comment says so); values are the
    Python spelling of the JSON values (``True``, ``None``, lists, dicts).
    """
    lines = ["# Parameters (injected by the sandbox from CONFIG)"]
    for key, value in config.items():
        if key.isidentifier() and not key.startswith("__"):
            lines.append(f"{key} = {value!r}")
        else:
            lines.append(f"# skipped {key!r}: not a Python name")
    return "\n".join(lines) + "\n"


def _inject(nb: Any, config: dict[str, Any]) -> None:
    nbformat: Any = importlib.import_module("nbformat")  # untyped
    cell = nbformat.v4.new_code_cell(parameters_source(config))
    cell.metadata["tags"] = ["injected-parameters"]
    tagged = [
        i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])
    ]
    nb.cells.insert(tagged[0] + 1 if tagged else 0, cell)


def _kernel_home(job_dir: Path) -> None:
    """Point every Jupyter and IPython directory into the job folder, with our kernel spec."""
    base = job_dir / ".jupyter"
    spec_dir = base / "data" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-u", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "Sandbox Python", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    os.environ.update(
        JUPYTER_PATH=str(base / "data"),
        JUPYTER_DATA_DIR=str(base / "data"),
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        JUPYTER_PLATFORM_DIRS="1",
        IPYTHONDIR=str(base / "ipython"),
        MPLBACKEND=os.environ.get("MPLBACKEND", "Agg"),
    )


def _text(out: Any) -> tuple[str, bool]:
    """An output as log text and whether it belongs on stderr."""
    kind = out.get("output_type")
    if kind == "stream":
        return str(out.get("text", "")), out.get("name") == "stderr"
    if kind == "error":
        return _ANSI.sub("", "\n".join(out.get("traceback", []))) + "\n", True
    data = out.get("data", {})
    plain = data.get("text/plain")
    if plain:
        text = "".join(plain) if isinstance(plain, list) else str(plain)
        return text + "\n", False
    return f"<{', '.join(sorted(data)) or kind}>\n", False


def main(argv: list[str] | None = None) -> int:
    """Execute the notebook named in ``argv`` (default ``sys.argv[1:]``); 0 when every cell ran."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: notebook_runner.py MODEL.ipynb", file=sys.stderr)
        return 2
    source = Path(args[0])
    job_dir = Path(os.environ.get("SANDBOX_JOB_DIR") or os.getcwd())
    result_dir = Path(os.environ.get("SANDBOX_RESULT_DIR") or job_dir)
    _kernel_home(job_dir)

    from jupyter_client.manager import KernelManager

    # The kernel starts first and boots while nbformat and nbclient load: their imports take
    # seconds on a small machine (jsonschema's format checkers build a grammar), and the
    # kernel needs about as long (issue 14, bench/bench_notebook.py). IPC sockets in the job
    # folder (relative to it, so short): no TCP port for the kernel.
    manager = KernelManager(kernel_name=KERNEL_NAME, transport="ipc", ip="kernel")
    manager.start_kernel(cwd=str(job_dir), extra_arguments=["--HistoryManager.hist_file=:memory:"])
    try:
        return _execute(source, result_dir, job_dir, manager)
    finally:
        manager.shutdown_kernel(now=True)


def _execute(source: Path, result_dir: Path, job_dir: Path, manager: Any) -> int:
    """Run every cell of ``source`` on ``manager``'s kernel; 0 when every cell ran."""
    nbformat: Any = importlib.import_module("nbformat")  # untyped
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(source, as_version=4)
    try:
        config = json.loads(os.environ.get("CONFIG") or "{}")
    except ValueError:
        config = {}
    if isinstance(config, dict) and config:
        _inject(nb, config)
    numbers: dict[int, str] = {}  # cell index -> its number in the uploaded notebook
    uploaded = 0
    for i, cell in enumerate(nb.cells):
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            numbers[i] = "parameters"
        else:
            uploaded += 1
            numbers[i] = str(uploaded)

    class _Client(NotebookClient):
        def output(self, outs: Any, msg: Any, display_id: Any, cell_index: int) -> Any:
            out = super().output(outs, msg, display_id, cell_index)
            if out is not None:
                text, err = _text(out)
                stream = sys.stderr if err else sys.stdout
                stream.write(text)
                stream.flush()
            return out

        async def async_execute_cell(
            self, cell: Any, cell_index: int, *args: Any, **kwargs: Any
        ) -> Any:
            if cell.cell_type != "code" or not cell.source.strip():
                return await super().async_execute_cell(cell, cell_index, *args, **kwargs)
            print(f"[cell {numbers[cell_index]}] start", flush=True)
            began = time.monotonic()
            try:
                return await super().async_execute_cell(cell, cell_index, *args, **kwargs)
            finally:
                took = time.monotonic() - began
                print(f"[cell {numbers[cell_index]}] done in {took:.2f} s", flush=True)

    client = _Client(
        nb,
        km=manager,
        timeout=None,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(job_dir)}},
        store_widget_state=False,
    )
    failed: str | None = None
    try:
        client.execute()
    except CellExecutionError as exc:
        index = next(
            (i for i, c in enumerate(nb.cells) for o in c.get("outputs", [])
             if o.get("output_type") == "error"),
            None,
        )  # fmt: skip
        cell = numbers[index] if index is not None else "?"
        last = f"{exc.ename}: {exc.evalue}".strip().splitlines() or ["error"]
        failed = f"{FAILURE_PREFIX}{cell} failed: {last[-1][:300]}"
    finally:
        out = result_dir / EXECUTED_NAME
        try:
            nbformat.write(nb, out)
        except OSError as exc:
            print(f"could not save the executed notebook: {exc}", file=sys.stderr)
    if failed is not None:
        print(failed, file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
