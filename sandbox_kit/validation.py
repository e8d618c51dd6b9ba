"""Check an uploaded model file before anything is stored.

:func:`validate_upload` turns an untrusted ``(filename, bytes)`` pair into a
:class:`ValidatedSource` or raises :class:`~sandbox_kit.errors.ValidationError`. It never writes
files and never executes the upload: the syntax check compiles it in a throw-away subprocess with
memory, CPU and wall-clock limits, because the CPython compiler itself can be driven into huge
allocations or deep recursion by hostile input.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from typing import Any

from sandbox_kit.errors import ValidationError

__all__ = [
    "MAX_THREADS",
    "MAX_UPLOAD_BYTES",
    "Declarations",
    "ValidatedSource",
    "check_size",
    "read_declarations",
    "safe_filename",
    "validate_upload",
]

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_THREADS = 256  # threads one model may declare

# A header line that asks for resources (issue 15): "# sandbox: threads=4, tokens=gurobi".
_DECLARATION_RE = re.compile(r"[ \t]*#[ \t]*sandbox[ \t]*:(.*)$")
_TOKEN_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_MAX_TOKENS = 5  # pools one model may draw from (the registry keeps them in 200 characters)

_MB = 1024 * 1024
_MAX_NAME_CHARS = 100
_BOM = b"\xef\xbb\xbf"
_COOKIE_RE = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")
_UTF8_COOKIES = frozenset({"utf-8", "utf8", "utf-8-sig"})
# Trojan Source (CVE-2021-42574): these reorder how code is displayed without changing how it runs.
_BIDI_RE = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
_SYNTAX_MEMORY_BYTES = 1024**3
_SYNTAX_CPU_SECONDS = 10
_SYNTAX_WALL_SECONDS = 15.0
_CHILD_LIMITS = (str(_SYNTAX_MEMORY_BYTES), str(_SYNTAX_CPU_SECONDS))

# Runs in the child as ``-c _CHILD NAME MEMORY CPU``. It limits itself because preexec_fn is
# unsafe in threaded parents. The CPU hard limit sits a second above the soft one so overrunning
# shows up as SIGXCPU rather than an anonymous SIGKILL, and a crash leaves no core file holding
# the upload behind. Compiling the raw bytes, not decoded text, makes CPython apply the BOM and
# coding cookie exactly as it will when the model is run later.
_CHILD = """\
import json, resource, sys
name, memory, cpu = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
limits = (resource.RLIMIT_AS, memory, memory), (resource.RLIMIT_CPU, cpu, cpu + 1)
for res, soft, hard in (*limits, (resource.RLIMIT_CORE, 0, 0)):
    old = resource.getrlimit(res)[1]
    if old != resource.RLIM_INFINITY:
        soft, hard = min(soft, old), min(hard, old)
    resource.setrlimit(res, (soft, hard))
source = sys.stdin.buffer.read()
try:
    compile(source, name, "exec", dont_inherit=True)
except SyntaxError as exc:
    result = {"msg": str(exc.msg), "lineno": exc.lineno, "offset": exc.offset}
except ValueError as exc:
    result = {"msg": str(exc), "lineno": None, "offset": None}
except (MemoryError, RecursionError):
    result = {"too_deep": True}
else:
    result = {"ok": True}
sys.stdout.write(json.dumps(result))
"""


@dataclass(frozen=True, slots=True)
class Declarations:
    """What a model's header asks of the sandbox (``# sandbox: threads=4, tokens=gurobi``).

    Attributes:
        threads: CPU slots the job takes (1 when not declared).
        tokens: licence pools it draws one token from each, e.g. ``("gurobi",)``.
    """

    threads: int = 1
    tokens: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ValidatedSource:
    """An upload that passed every check.

    Attributes:
        filename: the sanitised display file name, e.g. ``"dmo.py"``.
        stem: the default model name, the sanitised stem, e.g. ``"dmo"``.
        data: the exact bytes uploaded.
        sha256: hex digest of ``data``.
        size: ``len(data)``.
        declarations: what its header asks for (threads, licence tokens).
    """

    filename: str
    stem: str
    data: bytes
    sha256: str
    size: int
    declarations: Declarations = Declarations()


def safe_filename(name: str) -> str:
    """Reduce an untrusted file name to a safe, single-component display name.

    Args:
        name: the name as supplied by the browser or caller.

    Returns:
        A name of at most 100 characters that contains no path separators, NUL or control
        characters, no ``..`` and does not start with a dot or space.

    Raises:
        ValidationError: nothing usable is left after sanitising.
    """
    # NFKC first so look-alikes such as fullwidth dots and slashes become real "../" and get
    # neutralised below.
    text = unicodedata.normalize("NFKC", name)
    text = re.split(r"[/\\]", text)[-1]
    # Whitespace before control characters, so a tab separates words instead of vanishing.
    text = " ".join(text.split())
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("C"))
    text = "".join(ch if ch.isalnum() or ch in "._ -" else "_" for ch in text)
    text = re.sub(r"\.{2,}", ".", text).lstrip(". ").rstrip(" ")
    if len(text) > _MAX_NAME_CHARS:
        stem, dot, ext = text.rpartition(".")
        if dot and ext.lower() in ("py", "ipynb"):
            text = stem[: _MAX_NAME_CHARS - len(ext) - 1].rstrip(". ") + "." + ext
        else:
            text = text[:_MAX_NAME_CHARS].rstrip(". ")
    if not text:
        raise ValidationError("file name is empty after sanitising", filename=repr(name[:100]))
    return text


def validate_upload(
    filename: str, data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES
) -> ValidatedSource:
    """Validate an uploaded Python source file or notebook without writing or executing it.

    Notebooks (``.ipynb``) are checked by :func:`sandbox_kit.notebooks.validate_notebook`. For
    scripts, checks run in this order: name and extension, size, emptiness, NUL bytes, UTF-8, coding
    cookie, bidirectional control characters, syntax.

    Args:
        filename: the untrusted name the file was uploaded under.
        data: the uploaded bytes.
        max_bytes: the largest accepted size.

    Returns:
        The sanitised name and the unchanged bytes with their digest.

    Raises:
        ValidationError: the first check that failed, naming the sanitised file.
    """
    name = safe_filename(filename)
    if name.lower().endswith(".ipynb"):
        from sandbox_kit.notebooks import validate_notebook

        return validate_notebook(name, data, max_bytes=max_bytes)
    if not name.lower().endswith(".py"):
        raise ValidationError("only .py and .ipynb files can be uploaded", filename=name)
    check_size(name, len(data), max_bytes)
    if not data.removeprefix(_BOM).strip():
        raise ValidationError("file is empty", filename=name)
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ValidationError("file contains NUL bytes", filename=name, line=_line_of(data, nul))
    text = _decode(name, data)
    _check_cookie(name, text)
    _check_bidi(name, text)
    _check_syntax(name, data)
    declarations = read_declarations(text, filename=name)
    stem = name[:-3].rstrip(". ") or name
    digest = hashlib.sha256(data).hexdigest()
    return ValidatedSource(
        filename=name,
        stem=stem,
        data=data,
        sha256=digest,
        size=len(data),
        declarations=declarations,
    )


def read_declarations(text: str, *, filename: str | None = None) -> Declarations:
    """Read ``# sandbox: threads=N, tokens=a+b`` lines from a model's header.

    The header is the run of comment and blank lines at the top of the file (a shebang and a
    coding cookie included); ``# sandbox:`` lines further down are ordinary comments. Keys:
    ``threads`` (a whole number from 1 to :data:`MAX_THREADS`) and ``tokens`` (licence pool
    names, lowercase letters, digits and ``_``, joined by ``+``). Several lines may share the
    keys out; a key given twice is an error.

    Raises:
        ValidationError: an unknown key, a bad value, or a key given twice; names the line and
            column.
    """
    found: dict[str, object] = {}
    for lineno, line in enumerate(re.split(r"\r\n|\r|\n", text.removeprefix("\ufeff")), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            break  # the header ends at the first line of code (or docstring)
        match = _DECLARATION_RE.match(line)
        if match is None:
            continue
        offset = match.start(1)
        for part in match.group(1).split(","):
            column = offset + len(part) - len(part.lstrip()) + 1
            offset += len(part) + 1
            if not part.strip():
                continue
            key, eq, value = (x.strip() for x in part.partition("="))
            where = (filename, lineno, column)
            if not eq:
                raise _header_error(where, f"expected key=value, got {part.strip()!r}")
            if key in found:
                raise _header_error(where, f"{key} is declared twice")
            if key == "threads":
                if not value.isdigit() or not 1 <= int(value) <= MAX_THREADS:
                    raise _header_error(
                        where, f"threads must be a whole number from 1 to {MAX_THREADS}"
                    )
                found[key] = int(value)
            elif key == "tokens":
                names = tuple(n.strip().lower() for n in value.split("+"))
                if len(names) > _MAX_TOKENS or not all(_TOKEN_RE.fullmatch(n) for n in names):
                    raise _header_error(
                        where,
                        f"tokens must be up to {_MAX_TOKENS} pool names joined by '+', e.g. "
                        f"gurobi, not {value!r}",
                    )
                found[key] = tuple(dict.fromkeys(names))
            else:
                raise _header_error(where, f"unknown key {key!r} (known: threads, tokens)")
    threads = found.get("threads", 1)
    tokens = found.get("tokens", ())
    assert isinstance(threads, int) and isinstance(tokens, tuple)
    return Declarations(threads=threads, tokens=tokens)


def check_size(filename: str, size: int, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
    """Raise :class:`ValidationError` when ``size`` is over ``max_bytes``.

    Callers holding only a path check the size before reading a huge file into memory.
    """
    if size > max_bytes:
        reason = f"file is {_size(size)}; the limit is {_size(max_bytes)}"
        raise ValidationError(reason, filename=safe_filename(filename))


def _header_error(where: tuple[str | None, int, int], reason: str) -> ValidationError:
    filename, line, column = where
    return ValidationError(f"sandbox header: {reason}", filename=filename, line=line, column=column)


def _size(n: int) -> str:
    # Tiny limits (tests, configs) would all print as "0.0 MB", which explains nothing.
    return f"{n / _MB:.1f} MB" if n >= _MB // 10 else f"{n} bytes"


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _decode(name: str, data: bytes) -> str:
    # Decode the whole buffer (BOM included) so error offsets match the uploaded bytes.
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        reason = f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        raise ValidationError(reason, filename=name, line=_line_of(data, exc.start)) from None
    return text.removeprefix("\ufeff")


def _check_cookie(name: str, text: str) -> None:
    # Split only where CPython's tokenizer does; str.splitlines would also split on \f, \x1c...
    # and could push the real second line out of view.
    for lineno, line in enumerate(re.split(r"\r\n|\r|\n", text, maxsplit=2)[:2], start=1):
        match = _COOKIE_RE.match(line)
        if match is None:
            continue
        encoding = match.group(1)
        if encoding.lower().replace("_", "-") not in _UTF8_COOKIES:
            # A utf-7 cookie lets "+AAo-" inside a comment decode to a newline and run code.
            reason = f"coding cookie {encoding!r} is not allowed; only UTF-8 sources are accepted"
            raise ValidationError(reason, filename=name, line=lineno)


def _check_bidi(name: str, text: str) -> None:
    match = _BIDI_RE.search(text)
    if match is None:
        return
    pos = match.start()
    line_start = text.rfind("\n", 0, pos) + 1
    reason = f"bidirectional control character U+{ord(match.group()):04X}"
    raise ValidationError(
        reason, filename=name, line=text.count("\n", 0, pos) + 1, column=pos - line_start + 1
    )


def run_checker(
    name: str, child: str, args: list[str], data: bytes, *, wall_s: float = _SYNTAX_WALL_SECONDS
) -> dict[str, Any]:
    """Run a compile-only checker in a time- and memory-limited ``python -I -S`` child.

    ``child`` reads ``data`` on stdin and prints one JSON object; a child that times out,
    crashes or prints anything else is a :class:`ValidationError` naming ``name``.
    """
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-S", "-c", child, *args, *_CHILD_LIMITS],
            input=data,
            capture_output=True,
            timeout=wall_s,
            start_new_session=True,
            check=False,
        )
    except subprocess.TimeoutExpired:
        # subprocess.run has already killed and reaped the child.
        raise ValidationError("syntax check took too long", filename=name) from None
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        result = None
    if not isinstance(result, dict):
        code = proc.returncode
        if code == -signal.SIGXCPU:
            # The soft RLIMIT_CPU was hit; the hard limit one second later would be SIGKILL.
            raise ValidationError("syntax check took too long", filename=name)
        detail = f"signal {-code}" if code < 0 else f"exit status {code}"
        reason = f"syntax check failed: the compiler crashed ({detail})"
        raise ValidationError(reason, filename=name)
    return result


def _check_syntax(name: str, data: bytes) -> None:
    result = run_checker(name, _CHILD, [name], data)
    if result.get("ok"):
        return
    if result.get("too_deep"):
        reason = "source is too deeply nested or too large to compile"
        raise ValidationError(reason, filename=name)
    lineno, offset = result.get("lineno"), result.get("offset")
    raise ValidationError(
        str(result.get("msg") or "invalid syntax"),
        filename=name,
        line=lineno if isinstance(lineno, int) else None,
        column=offset if isinstance(offset, int) and offset > 0 else None,
    )
