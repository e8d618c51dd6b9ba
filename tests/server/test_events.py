"""The live event stream (issue 16): ``/sandbox/api/events`` over a real WebSocket client.

Events come from the durable log and the registry: jobs are started here through the HTTP
API, through the facade in this process, or by the CLI, and the server sees them all alike.
"""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any

import psutil
import pytest
from websockets.exceptions import InvalidStatus

from sandbox_kit import Sandbox
from tests.conftest import cli
from tests.server.conftest import Server, execute, follow, receive_all, seqs, upload, wait


def _model(server: Server, name: str, kind: str = "SO") -> int:
    with server.client() as client:
        model_id = upload(client, name, kind, name=name.removesuffix(".py"), activate=False)["id"]
    assert isinstance(model_id, int)
    return model_id


def test_a_job_is_followed_to_its_end(server: Server) -> None:
    model_id = _model(server, "slow_lines.py")
    with server.client() as client:
        job_id = execute(client, modelId=model_id, config={"lines": 20, "every": 0.02})
    messages = follow(server, job_id)
    kinds = [m["event"] for m in messages]
    assert kinds[0] == "optimization:started" and kinds[-1] == "optimization:completed"
    assert set(kinds[1:-1]) == {"optimization:log"}
    assert seqs(messages) == list(range(1, 21))
    assert [m["text"] for m in messages[1:-1]] == [f"tick {i}" for i in range(20)]
    log = messages[1]
    assert {"jobId", "modelType", "seq", "ts", "level", "stream", "text"} <= set(log)
    assert (log["jobId"], log["modelType"], log["stream"]) == (job_id, "SO", "stdout")
    assert messages[-1]["status"] == "success" and messages[-1]["job"]["id"] == job_id
    # Followed again after the end: the same lines, from the durable log.
    again = follow(server, job_id)
    assert [m["text"] for m in again[1:-1]] == [m["text"] for m in messages[1:-1]]


def test_a_reconnect_with_since_misses_nothing_and_repeats_nothing(server: Server) -> None:
    model_id = _model(server, "slow_lines.py")
    with server.client() as client:
        job_id = execute(client, modelId=model_id, config={"lines": 60, "every": 0.02})
    first: list[int] = []
    with server.events(f"jobId={job_id}") as ws:
        while len(first) < 15:
            message = json.loads(ws.recv(timeout=120))
            if message["event"] == "optimization:log":
                first.append(message["seq"])
    rest = follow(server, job_id, since=first[-1])
    assert "optimization:started" in [m["event"] for m in rest]
    assert first + seqs(rest) == list(range(1, 61))


@pytest.mark.parametrize(
    ("model", "config", "timeout", "status"),
    [
        ("nonzero_exit.py", {}, None, "failed"),
        ("hang.py", {}, 1.0, "timeout"),
    ],
)
def test_a_failure_is_optimization_failed_with_its_status(
    jupyter: Server, model: str, config: dict[str, Any], timeout: float | None, status: str
) -> None:
    model_id = _model(jupyter, model)
    with jupyter.client() as client:
        job_id = execute(client, modelId=model_id, config=config, timeout=timeout)
    last = follow(jupyter, job_id)[-1]
    assert (last["event"], last["status"]) == ("optimization:failed", status)
    assert last["reason"] and last["job"]["status"] == status


def test_a_cancelled_job_is_optimization_failed_cancelled(jupyter: Server) -> None:
    model_id = _model(jupyter, "hang.py")
    with jupyter.client() as client, jupyter.events() as everything:
        job_id = execute(client, modelId=model_id)
        with jupyter.events(f"jobId={job_id}") as ws:
            assert json.loads(ws.recv(timeout=120))["event"] == "optimization:started"
            assert client.post(f"jobs/{job_id}/cancel").status_code == 202
            last = receive_all(ws)[-1]
        assert (last["event"], last["status"]) == ("optimization:failed", "cancelled")
        mine = _until(everything, job_id, "optimization:failed")
        assert mine[-1]["status"] == "cancelled"


def _until(ws: Any, job_id: str, event: str) -> list[dict[str, Any]]:
    """This job's messages on an all-jobs stream, up to ``event``."""
    found: list[dict[str, Any]] = []
    while not found or found[-1]["event"] != event:
        message = json.loads(ws.recv(timeout=120))
        if message.get("jobId") == job_id:
            found.append(message)
    return found


def test_jobs_started_anywhere_appear_on_the_all_jobs_stream(jupyter: Server) -> None:
    model_id = _model(jupyter, "slow_lines.py", "RMO")
    other = _model(jupyter, "slow_lines.py", "DMO")
    config = json.dumps({"lines": 5, "every": 0.01})
    with jupyter.events("modelType=rmo") as ws:
        # Started by the CLI (another process), and of another type on the side.
        done = cli("run", str(model_id), "--config", config, home=jupyter.home)
        assert done.returncode == 0, done.stderr
        job_id = done.stdout.split()[-1]
        sb = Sandbox(home=jupyter.home)
        skipped = sb.run(other, config={"lines": 5, "every": 0.01}).id
        sb.close()
        mine = _until(ws, job_id, "optimization:completed")
    assert mine[0]["event"] == "optimization:started"
    assert seqs(mine) == [1, 2, 3, 4, 5]
    with jupyter.client() as client:
        wait(client, skipped)
    assert all(m["modelType"] == "RMO" for m in mine)


def test_the_all_jobs_stream_announces_running_jobs_and_goes_on_from_their_newest_lines(
    voila: Server,
) -> None:
    model_id = _model(voila, "slow_lines.py")
    with voila.client() as client:
        job_id = execute(client, modelId=model_id, config={"lines": 400, "every": 0.02})
        with voila.events(f"jobId={job_id}") as ws:  # wait until it has written some lines
            while json.loads(ws.recv(timeout=120))["event"] != "optimization:log":
                pass
        with voila.events() as ws:
            mine = _until(ws, job_id, "optimization:completed")
    assert mine[0]["event"] == "optimization:started"
    lines = seqs(mine)
    assert lines[0] > 1 and lines == list(range(lines[0], 401))


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("jobId=NOPE", 404),
        ("since=3", 400),
        ("jobId=x&since=-1", 400),
        ("jobId=x&since=many", 400),
        ("modelType=XYZ", 400),
    ],
)
def test_bad_filters_are_refused_before_the_upgrade(
    jupyter: Server, query: str, status: int
) -> None:
    if "jobId=x" in query:
        with jupyter.client() as client:
            job_id = execute(client, modelId=_model(jupyter, "exit_code.py"))
        query = query.replace("jobId=x", f"jobId={job_id}")
    with pytest.raises(InvalidStatus) as refused:
        jupyter.events(query)
    response = refused.value.response
    assert response.status_code == status
    assert json.loads(response.body)["error"]


@pytest.mark.slow
def test_a_million_lines_arrive_in_order(jupyter: Server) -> None:
    model_id = _model(jupyter, "flood.py", "DMO")
    with jupyter.client() as client:
        job_id = execute(client, modelId=model_id, config={"lines": 1_000_000})
    count = 0
    with jupyter.events(f"jobId={job_id}") as ws:
        assert json.loads(ws.recv(timeout=120))["event"] == "optimization:started"
        while True:
            message = json.loads(ws.recv(timeout=300))
            if message["event"] != "optimization:log":
                break
            assert (message["seq"], message["text"]) == (count + 1, f"line {count}")
            count += 1
    assert count == 1_000_000
    assert (message["event"], message["status"]) == ("optimization:completed", "success")


@pytest.mark.slow
def test_two_slow_clients_hold_up_nobody_and_cost_bounded_memory(jupyter: Server) -> None:
    lines = 200_000
    model_id = _model(jupyter, "flood.py", "DMO")
    with jupyter.client() as client:
        job_id = execute(client, modelId=model_id, config={"lines": lines})
        wait(client, job_id)
    server = psutil.Process(jupyter.proc.pid)
    results: list[list[int]] = []

    def drain(ws: Any, first: int) -> None:
        results.append(list(range(1, first + 1)) + seqs(receive_all(ws)))

    with contextlib.ExitStack() as stack:
        # Two clients read a little, then stop reading; the server must not buffer the rest.
        slow = [
            stack.enter_context(jupyter.events(f"jobId={job_id}", max_queue=4)) for _ in range(2)
        ]
        for ws in slow:
            for _ in range(100):  # started, then lines 1 to 99
                ws.recv(timeout=120)
        before = server.memory_info().rss
        fast = follow(jupyter, job_id)  # meanwhile a third client reads it all
        assert seqs(fast) == list(range(1, lines + 1))
        grown = server.memory_info().rss - before
        # Each message is ~130 bytes of JSON: the slow clients' backlog would take ~50 MB.
        assert grown < 20 * 1024 * 1024, f"server grew {grown / 2**20:.0f} MiB"
        threads = [threading.Thread(target=drain, args=(ws, 99)) for ws in slow]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(600)
    assert results == [list(range(1, lines + 1))] * 2


@pytest.mark.slow
def test_a_slow_all_jobs_client_is_told_to_resync(jupyter: Server) -> None:
    model_id = _model(jupyter, "flood.py", "SO")
    with jupyter.client() as client, jupyter.events("modelType=SO", max_queue=4) as ws:
        job_id = execute(client, modelId=model_id, config={"lines": 400_000})
        wait(client, job_id)  # the client reads nothing meanwhile
        mine = _until(ws, job_id, "optimization:completed")
        resync = [m for m in mine if m["event"] == "resync"]
        assert resync, "a client megabytes behind was not told to resync"
        since = resync[0]["since"]
        assert f"since={since}" in resync[0]["message"]
        got = seqs(mine)
        assert got == sorted(got) and len(got) < 400_000  # skipped, never out of order
        after = next(s for s in got if s > since)
        assert after > since + 1
        gap = client.get(f"jobs/{job_id}/logs", params={"since": since}).text.splitlines()
        assert [json.loads(t)["seq"] for t in gap[: after - since - 1]] == list(
            range(since + 1, after)
        )
