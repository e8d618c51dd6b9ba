"""Remote logs (issue 12): shipped into the registry as written, mirrored byte for byte where
they are read, one attempt at a time; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox_kit import logship
from sandbox_kit.db import Database
from sandbox_kit.dbapi import Connection
from sandbox_kit.lifecycle import Lifecycle
from tests.test_lifecycle import create


@pytest.fixture
def conn(db_url: str) -> Iterator[Connection]:
    db = Database(db_url)
    db.ensure_schema()
    db.dispose()
    connection = Connection(db_url)
    create(Lifecycle(connection), "J1", retries=1)
    yield connection
    connection.close()


def test_a_growing_log_is_mirrored_byte_for_byte(conn: Connection, tmp_path: Path) -> None:
    source, mirror = tmp_path / "worker.log", tmp_path / "here" / "J1.log"
    shipper = logship.LogShipper(conn, "J1", 1, str(source))
    written = b""
    for i in range(5):
        piece = (f"line {i} " * 50_000).encode() + bytes(range(256))  # > one chunk, binary
        with open(source, "ab") as out:
            out.write(piece)
        written += piece
        shipper.ship()
        logship.mirror(conn, "J1", mirror)
        assert mirror.read_bytes() == written
    assert shipper.ship() == 0  # nothing new
    assert logship.mirror(conn, "J1", mirror) == 0


def test_mirrors_racing_write_the_same_bytes(conn: Connection, tmp_path: Path) -> None:
    source, mirror = tmp_path / "worker.log", tmp_path / "J1.log"
    source.write_bytes(b"".join(f"{i:08d}\n".encode() for i in range(200_000)))
    logship.LogShipper(conn, "J1", 1, str(source)).ship()
    urls = [Connection(conn.url) for _ in range(4)]
    threads = [threading.Thread(target=logship.mirror, args=(c, "J1", mirror)) for c in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for c in urls:
        c.close()
    assert mirror.read_bytes() == source.read_bytes()


def test_a_new_attempt_replaces_the_log_and_a_dead_one_is_ignored(
    conn: Connection, tmp_path: Path
) -> None:
    lifecycle = Lifecycle(conn)
    first, second = tmp_path / "a1.log", tmp_path / "a2.log"
    first.write_bytes(b"attempt one\n")
    logship.LogShipper(conn, "J1", 1, str(first)).ship()
    mirror = tmp_path / "J1.log"
    logship.mirror(conn, "J1", mirror)
    assert mirror.read_bytes() == b"attempt one\n"
    lifecycle.claim(4, {})
    assert lifecycle.mark_lost("J1", "worker gone", attempt=1)  # queued again as attempt 2
    second.write_bytes(b"attempt two\n")
    logship.LogShipper(conn, "J1", 2, str(second)).ship()
    # A late chunk of the dead attempt is kept apart and never shown.
    with open(first, "ab") as out:
        out.write(b"late line of attempt one\n")
    late = logship.LogShipper(conn, "J1", 1, str(first))
    late.ship()
    logship.mirror(conn, "J1", mirror)
    assert mirror.read_bytes() == b"attempt two\n"


def test_a_missing_chunk_stops_the_mirror_until_it_arrives(
    conn: Connection, tmp_path: Path
) -> None:
    with conn.write() as st:
        for offset, data in ((0, b"first\n"), (12, b"third\n")):  # bytes 6..11 not yet there
            st.run(
                'INSERT INTO log_chunks (job_id, attempt, "offset", data) '
                "VALUES ('J1', 1, :o, :d)",
                {"o": offset, "d": data},
            )
    mirror = tmp_path / "J1.log"
    logship.mirror(conn, "J1", mirror)
    assert mirror.read_bytes() == b"first\n"
    with conn.write() as st:
        st.run(
            "INSERT INTO log_chunks (job_id, attempt, \"offset\", data) VALUES ('J1', 1, 6, :d)",
            {"d": b"second"},
        )
    logship.mirror(conn, "J1", mirror)
    assert mirror.read_bytes() == b"first\nsecondthird\n"
