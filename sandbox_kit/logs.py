"""The durable job log: how a supervisor writes it and how anyone reads it back.

One file per job, ``logs/<job id>.log``, one record per line::

    <seq> TAB <ts ms> TAB <stream><level><kind> TAB <raw bytes> LF

``stream`` is ``o`` (stdout) or ``e`` (stderr); ``level`` is ``D``/``I``/``W``/``E``; ``kind``
says how the raw bytes continue:

- ``n``: the model ended the line with a newline (not stored in ``raw``);
- ``c``: a chunk of a line longer than :data:`LINE_MAX` bytes; the next record continues it;
- ``p``: the model's last bytes on that stream, with no newline;
- ``r``: a progress update: ``raw`` ends with ``\\r`` and the line goes on (its ``seq`` is
  tentative: the line takes the next free one when it ends);
- ``x``: a note from the sandbox itself (e.g. the truncation notice), not model output.

``raw`` holds the model's bytes untouched (invalid UTF-8 included; it never contains a LF), so
concatenating the records gives back every byte the model wrote (:func:`raw_bytes`). Decoding,
``\\r`` collapsing and U+FFFD replacement happen only in the structured view (:class:`LogTail`).

This module is stdlib-only: the job supervisor imports it before anything else.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sandbox_kit.records import LogLine

LINE_MAX = 64 * 1024
_LEVELS = {b"D": "DEBUG", b"I": "INFO", b"W": "WARNING", b"E": "ERROR"}
_STREAMS = {b"o": "stdout", b"e": "stderr"}
# An explicit level marker near the start of a line: "ERROR: x", "[WARNING] x",
# logging's "INFO:root:x", "12:00:01 - DEBUG - x", "| ERROR |".
_MARKER = re.compile(
    rb"(?:^|[\s\[(|])(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)(?:[\]):|]|\s+-\s|\s*$)"
)
_MARKER_LEVEL = {
    b"DEBUG": b"D",
    b"INFO": b"I",
    b"WARNING": b"W",
    b"WARN": b"W",
    b"ERROR": b"E",
    b"CRITICAL": b"E",
    b"FATAL": b"E",
}
_TRACEBACK = b"Traceback (most recent call last):"


class LogWriter:
    """Turns a model's raw output chunks into durable log records (supervisor side).

    Args:
        path: the log file (created, appended to).
        cap_bytes: once this many bytes are written, output is still accepted (so the model
            never blocks on a full pipe) but dropped, and one notice record says so.
    """

    def __init__(self, path: str | os.PathLike[str], cap_bytes: int) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._cap = cap_bytes
        self.written = 0
        self.seq = 0
        self.truncated = False
        self._pending = {b"o": b"", b"e": b""}
        self._in_traceback = {b"o": False, b"e": False}
        self.stderr_tail = b""

    def feed(self, stream: bytes, chunk: bytes, ts_ms: int) -> None:
        """Accept a chunk read from ``stream`` (``b"o"`` or ``b"e"``)."""
        if stream == b"e":
            self.stderr_tail = (self.stderr_tail + chunk)[-4096:]
        data = self._pending[stream] + chunk
        if b"\n" not in data and b"\r" not in data and len(data) <= LINE_MAX:
            self._pending[stream] = data
            return
        out: list[bytes] = []
        lines = data.split(b"\n")
        rest = lines.pop()
        for raw in lines:
            self._line(out, stream, raw, b"n", ts_ms)
        while len(rest) > LINE_MAX:
            cut = _utf8_cut(rest, LINE_MAX)
            self._record(out, stream, rest[:cut], b"c", ts_ms)
            rest = rest[cut:]
        if b"\r" in rest:
            cut = rest.rindex(b"\r") + 1
            level = self._level(stream, rest[:cut])
            out.append(
                b"%d\t%d\t%s%s%s\t%s\n" % (self.seq + 1, ts_ms, stream, level, b"r", rest[:cut])
            )
            rest = rest[cut:]
        self._pending[stream] = rest
        self._write(out, ts_ms)

    def note(self, text: str, ts_ms: int, level: bytes = b"W") -> None:
        """Write a line of the sandbox's own (kind ``x``), e.g. why a job stopped."""
        self.seq += 1
        raw = text.encode("utf-8", "replace").replace(b"\n", b" ")
        record = b"%d\t%d\te%sx\t%s\n" % (self.seq, ts_ms, level, raw)
        os.write(self._fd, record)

    def close(self, ts_ms: int) -> None:
        """Flush lines left without a newline and close the file."""
        out: list[bytes] = []
        for stream in (b"o", b"e"):
            if self._pending[stream]:
                self._line(out, stream, self._pending[stream], b"p", ts_ms)
                self._pending[stream] = b""
        self._write(out, ts_ms)
        os.close(self._fd)

    def _line(self, out: list[bytes], stream: bytes, raw: bytes, kind: bytes, ts_ms: int) -> None:
        while len(raw) > LINE_MAX:
            cut = _utf8_cut(raw, LINE_MAX)
            self._record(out, stream, raw[:cut], b"c", ts_ms)
            raw = raw[cut:]
        self._record(out, stream, raw, kind, ts_ms)

    def _record(self, out: list[bytes], stream: bytes, raw: bytes, kind: bytes, ts_ms: int) -> None:
        self.seq += 1
        level = self._level(stream, raw)
        out.append(b"%d\t%d\t%s%s%s\t%s\n" % (self.seq, ts_ms, stream, level, kind, raw))

    def _level(self, stream: bytes, raw: bytes) -> bytes:
        if self._in_traceback[stream]:
            # Frames are indented; the first unindented line is the exception and ends it.
            self._in_traceback[stream] = raw[:1] in (b" ", b"\t", b"")
            return b"E"
        if raw.startswith(_TRACEBACK):
            self._in_traceback[stream] = True
            return b"E"
        match = _MARKER.search(raw, 0, 80)
        if match is not None:
            return _MARKER_LEVEL[match.group(1)]
        return b"I" if stream == b"o" else b"E"

    def _write(self, out: list[bytes], ts_ms: int) -> None:
        if not out:
            return
        data = b"".join(out)
        if self.written + len(data) > self._cap:
            if self.truncated:
                return
            self.truncated = True
            keep = max(0, self._cap - self.written)
            data = data[: data.rfind(b"\n", 0, keep) + 1]
            os.write(self._fd, data)
            self.written += len(data)
            self.note(
                f"log truncated: output past {self._cap} bytes is drained but not kept", ts_ms
            )
            return
        os.write(self._fd, data)
        self.written += len(data)


@dataclass(frozen=True, slots=True)
class Progress:
    """The current ``\\r`` progress line of a running job, on one stream."""

    stream: str
    text: str


class LogTail:
    """Reads a job's log incrementally and yields structured lines (reader side).

    Any process can tail any job: records are appended whole, and a record is only consumed
    once its terminating newline is on disk, so a half-written record is picked up next time.

    Args:
        path: the job's log file (it may not exist yet).
        since: skip lines with ``seq <= since``.
    """

    def __init__(self, path: str | os.PathLike[str], since: int = 0) -> None:
        self.path = path
        self.since = since
        self._offset = 0
        self._progress: dict[bytes, str] = {}  # per stream: the line being redrawn

    @property
    def offset(self) -> int:
        """Bytes of the file consumed so far. A :meth:`read` that returns nothing may still
        have moved it (every record it read had ``seq <= since``): more may be waiting."""
        return self._offset

    def read(self, max_bytes: int | None = None, *, skip: bool = False) -> list[LogLine | Progress]:
        """What is complete since the last call, in order.

        Args:
            max_bytes: read at most about this much (at least one whole record); call again
                for the rest. Bounds the memory a long backlog costs.
            skip: when more than ``max_bytes`` is waiting, jump to the newest part (a viewer
                that only shows a bounded tail; a follower that needs every line keeps False).
        """
        if max_bytes is not None:
            max_bytes = max(max_bytes, 2 * LINE_MAX)  # room for one whole record
        try:
            with open(self.path, "rb") as fh:
                if max_bytes is not None and skip:
                    size = fh.seek(0, os.SEEK_END)
                    if size - self._offset > max_bytes:
                        fh.seek(size - max_bytes)
                        fh.readline()  # resynchronise on the next whole record
                        self._offset = fh.tell()
                fh.seek(self._offset)
                data = fh.read() if max_bytes is None else fh.read(max_bytes)
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        if end == 0:
            return []
        self._offset += end
        return list(self._parse(data[:end]))

    def _parse(self, data: bytes) -> Iterator[LogLine | Progress]:
        for record in data.split(b"\n")[:-1]:
            seq_b, ts_b, flags, raw = record.split(b"\t", 3)
            seq = int(seq_b)
            if seq <= self.since:
                continue
            stream, level, kind = flags[0:1], flags[1:2], flags[2:3]
            text = _display(raw)
            if kind == b"r":
                if text:
                    self._progress[stream] = text
                    yield Progress(_STREAMS.get(stream, "stderr"), text)
                continue
            if kind != b"x":
                shown = self._progress.pop(stream, "")
                text = text or shown  # "50%\r100%\r\n": the line ends as its last redraw
            ts = datetime.fromtimestamp(int(ts_b) / 1000, UTC)
            yield LogLine(seq, ts, _STREAMS.get(stream, "stderr"), _LEVELS.get(level, "INFO"), text)


def read_lines(path: str | os.PathLike[str], since: int = 0) -> list[LogLine]:
    """All complete structured lines of a log with ``seq > since``."""
    return [item for item in LogTail(path, since).read() if isinstance(item, LogLine)]


def raw_bytes(path: str | os.PathLike[str]) -> bytes:
    """The model's output exactly as written (both streams, in arrival order), in memory."""
    return b"".join(iter_raw(path))


def iter_raw(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    """The model's output exactly as written, in pieces of about ``chunk_bytes``.

    Memory stays constant however long the log is; a half-written last record is left out.
    """
    chunk_bytes = max(chunk_bytes, 2 * LINE_MAX)  # room for one whole record
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, around the yields
    except FileNotFoundError:
        return
    with fh:
        carry = b""
        while block := fh.read(chunk_bytes):
            data = carry + block
            end = data.rfind(b"\n") + 1
            carry = data[end:]
            out: list[bytes] = []
            for record in data[:end].split(b"\n")[:-1]:
                _, _, flags, raw = record.split(b"\t", 3)
                kind = flags[2:3]
                if kind != b"x":
                    out.append(raw + b"\n" if kind == b"n" else raw)
            if out:
                yield b"".join(out)


def _display(raw: bytes) -> str:
    """What a terminal would show of the line: the last ``\\r`` segment, decoded."""
    if b"\r" in raw:
        segments = [s for s in raw.split(b"\r") if s]
        raw = segments[-1] if segments else b""
    return raw.decode("utf-8", "replace")


def _utf8_cut(data: bytes, limit: int) -> int:
    """A cut position <= limit that does not split a UTF-8 character."""
    cut = limit
    while cut > limit - 4 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return cut if cut > limit - 4 else limit
