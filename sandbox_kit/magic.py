"""The ``%%sandbox`` cell magic: a cell's code runs as a throw-away model in the sandbox.

::

    %load_ext sandbox_kit

    %%sandbox DMO --config '{"load_scale": 1.1}'
    import json, os
    print("scale", json.loads(os.environ["CONFIG"])["load_scale"])

The code never runs in the notebook's kernel: it is checked like an uploaded ``.py`` file,
stored as a scratch version (hidden from the model lists, never active; identical cells share
one) and run through :meth:`Sandbox.run_code <sandbox_kit.Sandbox.run_code>`, supervised,
isolated and limited like any model. ``--save NAME`` stores it as an ordinary, inactive
version of the model ``NAME`` instead and runs that.

The cell returns at once, so the kernel stays free and the card's Cancel button works: the
card under the cell (:class:`~sandbox_kit.widgets.job_card.JobCard`) shows the live log and,
at the end, status, outcome and objective. The cell's value is the :class:`~sandbox_kit.Job`
(in ``_``, ``Out[n]``). Bad input is a ``UsageError`` with one sentence, and nothing runs.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class, no_var_expand

from sandbox_kit.errors import SandboxKitError, ValidationError
from sandbox_kit.jobs import Job
from sandbox_kit.records import ModelType, parse_config

if TYPE_CHECKING:
    from sandbox_kit.sandbox import Sandbox
    from sandbox_kit.widgets.job_card import JobCard

__all__ = ["CellJob", "SandboxMagics"]

_USAGE = (
    "%%sandbox TYPE [--config JSON] [--timeout S] [--data-source ID] [--save NAME] [--home PATH]"
)


class CellJob(Job):
    """The :class:`~sandbox_kit.Job` a ``%%sandbox`` cell returns; it displays as its card.

    Attributes:
        card: the live view shown under the cell.
    """

    def __init__(self, job: Job, card: JobCard) -> None:
        super().__init__(job._sandbox, job.info)
        self.card = card

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.card)  # type: ignore[no-untyped-call]


@magics_class
class SandboxMagics(Magics):
    """The ``%%sandbox`` magic; one sandbox per home folder is opened and kept per kernel."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._sandboxes: dict[str, Sandbox] = {}

    # JSON in --config must reach the parser as typed: no {expression} or $name expansion.
    @no_var_expand
    @cell_magic
    def sandbox(self, line: str, cell: str) -> CellJob:
        """Run the cell's code as a model in the sandbox, not in this kernel.

        ::

            %%sandbox TYPE [--config JSON] [--timeout S] [--data-source ID] [--save NAME]
                           [--home PATH]

        TYPE is DMO, RMO or SO (``$MODEL_TYPE``, and the type whose limits apply);
        ``--config`` the run's config, a JSON object; ``--timeout`` a wall-clock limit in
        seconds; ``--data-source`` ``data:NAME[@VERSION]``, ``job:JOB_ID`` or
        ``latest:TYPE``; ``--save NAME`` stores the code as the next (inactive) version of
        model NAME and runs that; ``--home`` the sandbox's home (default: ``SANDBOX_HOME``).
        The cell's value is the :class:`~sandbox_kit.Job`.
        """
        args = _parse(line)
        try:
            kind = ModelType.parse(args.model_type)
        except ValueError as exc:
            raise UsageError(f"%%sandbox: {exc}") from None
        if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
            raise UsageError(
                f"%%sandbox: --timeout must be a positive number of seconds, not {args.timeout}"
            )
        if not cell.strip():
            raise UsageError("%%sandbox: the cell is empty; write the model's code under it")
        try:
            config = parse_config(args.config, filename="--config")
            sandbox = self._sandbox(args.home)
        except SandboxKitError as exc:
            raise UsageError(f"%%sandbox: {exc}") from None
        try:
            return self._start(sandbox, kind, cell, config, args)
        except ValidationError as exc:
            raise UsageError(f"%%sandbox: {_where(exc)}") from None
        except SandboxKitError as exc:
            raise UsageError(f"%%sandbox: {exc}") from None

    def _start(
        self, sandbox: Sandbox, kind: ModelType, code: str, config: dict[str, Any], args: Any
    ) -> CellJob:
        from sandbox_kit.widgets.job_card import JobCard

        job = sandbox.run_code(
            code,
            kind,
            config=config,
            data_source_id=args.data_source,
            timeout=args.timeout,
            save_as=args.save,
            description="saved from a %%sandbox cell" if args.save else "",
        )
        note = ""
        if args.save is not None:
            model = sandbox.model(job.info.model_id or 0)
            note = f"Saved as {model.label} (model {model.id}), "
            if model.active:  # the same code saved and activated before
                note += f"the active {kind.value} model."
            else:
                note += (
                    f"inactive: activate it in the Models tab or with sandbox-kit activate "
                    f"{model.id} to make it the version {kind.value} runs."
                )
        card = JobCard(sandbox, job.id, title=f"%%sandbox {kind.value}", note=note)
        return CellJob(job, card)

    def _sandbox(self, home: str | None) -> Sandbox:
        from sandbox_kit.config import Paths
        from sandbox_kit.sandbox import Sandbox

        if home is not None and not Path(home).expanduser().is_dir():
            raise ValidationError(f"--home {home}: no such folder")
        key = str(Paths.resolve(None if home is None else Path(home).expanduser()).home)
        key += "\0" + os.environ.get("SANDBOX_DB_URL", "")
        if key not in self._sandboxes:
            self._sandboxes[key] = Sandbox(home=None if home is None else Path(home).expanduser())
        return self._sandboxes[key]

    def close(self) -> None:
        """Release the database connections of every sandbox this magic opened."""
        for sandbox in self._sandboxes.values():
            sandbox.close()
        self._sandboxes.clear()


class _Parser(argparse.ArgumentParser):
    """The magic's line: a usage error is a ``UsageError``, never a ``SystemExit``."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"%%sandbox: {message}; usage: {_USAGE}")


_PARSER = _Parser(prog="%%sandbox", add_help=False, exit_on_error=False)
_PARSER.add_argument("model_type", metavar="TYPE")
_PARSER.add_argument("--config", default="", metavar="JSON")
_PARSER.add_argument("--timeout", type=float, metavar="S")
_PARSER.add_argument("--data-source", dest="data_source", metavar="ID")
_PARSER.add_argument("--save", metavar="NAME")
_PARSER.add_argument("--home", metavar="PATH")


def _parse(line: str) -> argparse.Namespace:
    # POSIX splitting, so a quoted --config '{"a": 1}' arrives without its quotes.
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%%sandbox: {exc} in {line.strip()!r}") from None
    try:
        return _PARSER.parse_args(words)
    except argparse.ArgumentError as exc:
        _PARSER.error(str(exc))


def _where(exc: ValidationError) -> str:
    """A rejection of the cell's code (the only one naming a file), placed in the cell as
    its editor numbers lines (the ``%%sandbox`` line is line 1); any other as it is."""
    if exc.filename is None:
        return str(exc)
    where = "the cell" if exc.line is None else f"cell line {exc.line + 1}"
    if exc.line is not None and exc.column is not None:
        where += f", column {exc.column}"
    return f"nothing was run: {where}: {exc.reason}"
