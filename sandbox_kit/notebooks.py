"""Check an uploaded notebook model (``.ipynb``) before anything is stored.

:func:`validate_notebook` is the notebook half of
:func:`~sandbox_kit.validation.validate_upload`: size, UTF-8, a JSON document that validates as
nbformat 4, cell metadata that is neither huge nor reserved, no bidirectional control characters,
and every code cell compiled (never run) in a limited throw-away subprocess. Like the script
checks it never writes files, so a rejected notebook leaves nothing behind.

IPython syntax is allowed where a kernel would accept it: a cell starting with a cell magic
(``%%timeit``) is not compiled, and lines starting with ``%`` or ``!`` count as statements.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from typing import Any

from sandbox_kit.errors import ValidationError
from sandbox_kit.validation import (
    MAX_UPLOAD_BYTES,
    Declarations,
    ValidatedSource,
    check_size,
    read_declarations,
)

__all__ = ["MAX_CELL_METADATA_BYTES", "RESERVED_TAGS", "validate_notebook"]

#: The largest JSON encoding of one cell's metadata that is accepted.
MAX_CELL_METADATA_BYTES = 64 * 1024
#: Tags the runner writes itself; an upload carrying them could pass for injected parameters.
RESERVED_TAGS = frozenset({"injected-parameters"})

_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_WALL_SECONDS = 30.0

# Runs in the child as ``-c _CHILD MEMORY CPU``, with the cells as a JSON list on stdin; limits
# itself like the script check's child (sandbox_kit/validation.py) and reports the first cell
# that does not compile.
_CHILD = """\
import json, resource, sys
memory, cpu = int(sys.argv[1]), int(sys.argv[2])
limits = (resource.RLIMIT_AS, memory, memory), (resource.RLIMIT_CPU, cpu, cpu + 1)
for res, soft, hard in (*limits, (resource.RLIMIT_CORE, 0, 0)):
    old = resource.getrlimit(res)[1]
    if old != resource.RLIM_INFINITY:
        soft, hard = min(soft, old), min(hard, old)
    resource.setrlimit(res, (soft, hard))
result = {"ok": True}
for number, source in json.loads(sys.stdin.buffer.read()):
    try:
        compile(source, "cell %d" % number, "exec", dont_inherit=True)
    except SyntaxError as exc:
        result = {"cell": number, "msg": str(exc.msg), "lineno": exc.lineno}
    except ValueError as exc:
        result = {"cell": number, "msg": str(exc), "lineno": None}
    except (MemoryError, RecursionError):
        result = {"cell": number, "msg": "too deeply nested or too large to compile"}
    else:
        continue
    break
sys.stdout.write(json.dumps(result))
"""


def validate_notebook(
    name: str, data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES
) -> ValidatedSource:
    """Validate an uploaded notebook without writing or executing it.

    Args:
        name: the sanitised file name (ends with ``.ipynb``).
        data: the uploaded bytes.
        max_bytes: the largest accepted size (outputs included).

    Returns:
        The unchanged bytes with their digest; ``declarations`` come from ``# sandbox:`` lines
        at the top of the first code cell.

    Raises:
        ValidationError: the first check that failed, naming the file (and the cell).
    """
    check_size(name, len(data), max_bytes)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        reason = f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        raise ValidationError(reason, filename=name) from None
    try:
        document = json.loads(text.removeprefix("\ufeff"))
    except RecursionError:
        raise ValidationError("notebook is too deeply nested", filename=name) from None
    except ValueError as exc:
        raise ValidationError(f"notebook is not valid JSON: {exc}", filename=name) from None
    if not isinstance(document, dict) or document.get("nbformat") != 4:
        found = document.get("nbformat") if isinstance(document, dict) else None
        reason = f"only nbformat 4 notebooks are accepted (this one is nbformat {found!r})"
        raise ValidationError(reason, filename=name)
    _check_schema(name, document)
    cells: list[dict[str, Any]] = document["cells"]
    code: list[tuple[int, str]] = []
    for number, cell in enumerate(cells, start=1):
        _check_metadata(name, number, cell.get("metadata", {}))
        source = _source(cell)
        if any(ch in _BIDI for ch in source):
            reason = f"cell {number}: bidirectional control character in the source"
            raise ValidationError(reason, filename=name)
        if cell["cell_type"] == "code":
            code.append((number, _as_python(source)))
    _compile_cells(name, code)
    first = next((s for c in cells if c["cell_type"] == "code" for s in [_source(c)]), "")
    declarations = read_declarations(first, filename=name) if first else Declarations()
    return ValidatedSource(
        filename=name,
        stem=name[: -len(".ipynb")].rstrip(". ") or name,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        declarations=declarations,
    )


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _check_schema(name: str, document: dict[str, Any]) -> None:
    import nbformat
    from nbformat.warnings import MissingIDFieldWarning

    try:
        with warnings.catch_warnings():
            # Cells of nbformat 4.5 without ids are common in the wild; the kernel does not care.
            warnings.simplefilter("ignore", MissingIDFieldWarning)
            nbformat.validate(document, version=4)
    except nbformat.ValidationError as exc:
        reason = f"not a valid nbformat 4 notebook: {str(exc.message)[:200]}"
        raise ValidationError(reason, filename=name) from None
    except RecursionError:
        raise ValidationError("notebook is too deeply nested", filename=name) from None


def _check_metadata(name: str, number: int, metadata: object) -> None:
    if not isinstance(metadata, dict):  # the schema says so; checked again for safety
        raise ValidationError(f"cell {number}: metadata is not an object", filename=name)
    if len(json.dumps(metadata)) > MAX_CELL_METADATA_BYTES:
        reason = f"cell {number}: metadata is over {MAX_CELL_METADATA_BYTES // 1024} KB"
        raise ValidationError(reason, filename=name)
    tags = metadata.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValidationError(f"cell {number}: tags must be a list of strings", filename=name)
    reserved = RESERVED_TAGS.intersection(tags)
    if reserved:
        reason = f"cell {number}: tag {sorted(reserved)[0]!r} is reserved for the sandbox"
        raise ValidationError(reason, filename=name)


def _as_python(source: str) -> str:
    """The cell as plain Python: IPython magics and shell escapes become ``pass``."""
    if source.lstrip().startswith("%%"):
        return ""
    lines = []
    for line in source.splitlines():
        body = line.lstrip()
        magic = body.startswith(("%", "!"))
        lines.append(line[: len(line) - len(body)] + "pass" if magic else line)
    return "\n".join(lines)


def _compile_cells(name: str, code: list[tuple[int, str]]) -> None:
    from sandbox_kit.validation import run_checker

    result = run_checker(name, _CHILD, [], json.dumps(code).encode(), wall_s=_WALL_SECONDS)
    if result.get("ok"):
        return
    lineno = result.get("lineno")
    raise ValidationError(
        f"cell {result.get('cell')}: {result.get('msg') or 'invalid syntax'}",
        filename=name,
        line=lineno if isinstance(lineno, int) else None,
    )
