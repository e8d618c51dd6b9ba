"""The Dask cluster (issue 12) against a real ``LocalCluster``: workers and slots, the SQLite
registry check, the ``workers`` command and doctor's cluster section."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from sandbox_kit import cluster
from sandbox_kit.errors import ClusterError
from tests.conftest import cli
from tests.dask_fixtures import SLOTS_PER_WORKER, DaskCluster, dask_cluster, hold_slot
from tests.scheduling import free_port, wait_for
from tests.test_package import _imported_after

pytestmark = pytest.mark.slow  # a cluster of three processes per test

__all__ = ["dask_cluster"]  # the fixture, imported for pytest

JOB = "DMO_1764331200000_k3f9qa"
UNREACHABLE = "tcp://127.0.0.1:9"  # nothing listens on the discard port here


def test_workers_are_listed_with_their_slots(dask_cluster: DaskCluster) -> None:
    address = dask_cluster({"SANDBOX_TEST_MARK": "from-the-fixture"})
    with cluster.connect(address) as client:
        infos = cluster.workers(client)
        assert len(infos) == 2
        assert [w.address for w in infos] == sorted(w.address for w in infos)
        for info in infos:
            assert (info.slots, info.slots_used, info.jobs) == (SLOTS_PER_WORKER, 0, ())
            assert info.host == "127.0.0.1" and info.address.startswith("tcp://127.0.0.1:")
            assert info.memory_bytes > 0 and info.name
        assert cluster.total_slots(client) == 2 * SLOTS_PER_WORKER
        # Each worker has the fixture's environment and a scratch folder of its own.
        assert set(client.run(os.getenv, "SANDBOX_TEST_MARK").values()) == {"from-the-fixture"}
        scratch = client.run(lambda dask_worker: dask_worker.local_directory)
        assert len(set(scratch.values())) == 2


def test_slots_used_and_jobs_follow_the_job_tasks(
    dask_cluster: DaskCluster, tmp_path: Path
) -> None:
    address = dask_cluster({})
    release = str(tmp_path / "release")
    slots = {JOB: 1, "RMO_1764331200001_abcdef": 2, "SO_1764331200002_zzzzzz": 2}
    with cluster.connect(address) as client:

        def assigned(key: str) -> list[cluster.WorkerInfo]:
            infos = cluster.workers(client)
            return infos if any(key in w.jobs for w in infos) else []

        futures = [client.submit(hold_slot, release, key=JOB, resources={"slots": 1})]
        infos = wait_for(lambda: assigned(JOB), what=f"{JOB} on a worker")
        assert sorted((w.slots_used, w.jobs) for w in infos) == [(0, ()), (1, (JOB,))]
        # A task that holds no slots is not a job.
        futures.append(client.submit(hold_slot, release, key="not-a-job"))
        for key in list(slots)[1:]:
            futures.append(client.submit(hold_slot, release, key=key, resources={"slots": 2}))
            infos = wait_for(lambda key=key: assigned(key), what=f"{key} on a worker")
        wait_for(lambda: "not-a-job" in str(client.processing()), what="the plain task")
        infos = cluster.workers(client)
        # Every job counts where the scheduler put it, whether it runs or waits there for slots.
        assert sorted(job for w in infos for job in w.jobs) == sorted(slots)
        for info in infos:
            assert info.slots_used == sum(slots[job] for job in info.jobs)
        assert cluster.total_slots(client) == 2 * SLOTS_PER_WORKER
        Path(release).touch()
        assert [f.result(timeout=60) for f in futures] == [True] * 4
        wait_for(
            lambda: all(w.slots_used == 0 and not w.jobs for w in cluster.workers(client)),
            what="slots released",
        )


def test_sqlite_registry_on_this_host_is_accepted(
    dask_cluster: DaskCluster, tmp_path: Path
) -> None:
    address = dask_cluster({})
    with cluster.connect(address) as client:
        cluster.check_registry(f"sqlite:///{tmp_path / 'sandbox.db'}", client)
        cluster.check_registry("postgresql+psycopg://sk@db.example.com/sandbox", client)


def test_sqlite_registry_is_refused_with_a_worker_elsewhere(
    dask_cluster: DaskCluster, tmp_path: Path
) -> None:
    address = dask_cluster({})
    # A real worker that says it is at a documentation address (TEST-NET-1): to the scheduler
    # it is a worker on another host.
    port = free_port()
    remote = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_worker",
            address,
            "--no-nanny",
            "--nthreads=1",
            "--resources=slots=1",
            f"--listen-address=tcp://127.0.0.1:{port}",
            f"--contact-address=tcp://192.0.2.10:{port}",
            f"--local-directory={tmp_path / 'remote-worker'}",
            "--no-dashboard",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with cluster.connect(address) as client:
            wait_for(lambda: len(cluster.workers(client)) == 3, what="the third worker")
            sqlite = f"sqlite:///{tmp_path / 'sandbox.db'}"
            with pytest.raises(ClusterError) as caught:
                cluster.check_registry(sqlite, client)
            message = str(caught.value)
            assert message.startswith("the registry is a SQLite file, which only this host can")
            assert f"worker at tcp://192.0.2.10:{port} runs on 192.0.2.10" in message
            assert "PostgreSQL" in message
            # A registry every host can reach is fine.
            cluster.check_registry("postgresql+psycopg://sk@db.example.com/sandbox", client)
    finally:
        remote.terminate()
        remote.wait(timeout=60)


def _an_interface_address() -> str:
    for addresses in psutil.net_if_addrs().values():
        for entry in addresses:
            if entry.family == socket.AF_INET and not entry.address.startswith("127."):
                return str(entry.address)
    return "127.0.0.1"  # a machine with loopback only


@pytest.mark.parametrize(
    ("host", "here"),
    [
        ("127.0.0.1", True),
        ("127.5.6.7", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LOCALHOST", True),
        (socket.gethostname(), True),
        (_an_interface_address(), True),
        ("192.0.2.10", False),
        ("2001:db8::1", False),
        ("no-such-host.invalid", False),
        ("", False),
    ],
)
def test_is_this_host(host: str, here: bool) -> None:
    assert cluster.is_this_host(host) is here


@pytest.mark.parametrize(
    ("address", "host"),
    [
        ("tcp://10.0.0.5:8786", "10.0.0.5"),
        ("tls://[2001:db8::1]:8786", "2001:db8::1"),
        ("tcp://sched.example.com:8786", "sched.example.com"),
        ("127.0.0.1:8786", "127.0.0.1"),
    ],
)
def test_host_of(address: str, host: str) -> None:
    assert cluster.host_of(address) == host


def test_the_cluster_module_loads_dask_only_when_used() -> None:
    loaded = _imported_after(
        "import sandbox_kit.cluster, sandbox_kit.cli_cluster, sandbox_kit.doctor"
    )
    assert loaded & {"dask", "distributed", "fsspec"} == set()


def test_an_unreachable_scheduler_is_a_cluster_error() -> None:
    with pytest.raises(ClusterError) as caught:
        cluster.connect(UNREACHABLE, timeout=1.0)
    assert str(caught.value).startswith(f"cannot reach the Dask scheduler at {UNREACHABLE}: ")
    assert caught.value.address == UNREACHABLE
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler at nonsense: "):
        cluster.connect("nonsense")


def test_cli_workers_lists_the_cluster(dask_cluster: DaskCluster, home: Path) -> None:
    address = dask_cluster({})
    env = {"SANDBOX_EXECUTOR": "dask", "SANDBOX_DASK_ADDRESS": address}
    done = cli("workers", "--json", home=home, env=env)
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [w["slots"] for w in listed] == [SLOTS_PER_WORKER] * 2
    assert {w["slots_used"] for w in listed} == {0} and all(w["jobs"] == [] for w in listed)
    assert {"address", "name", "host", "memory_bytes"} <= set(listed[0])
    lines = cli("workers", home=home, env=env).stdout.splitlines()
    assert lines[0].split() == ["ADDRESS", "HOST", "SLOTS", "MEMORY", "JOBS"]
    assert len(lines) == 3
    for line, worker in zip(lines[1:], listed, strict=True):
        assert line.split()[:3] == [worker["address"], "127.0.0.1", f"0/{SLOTS_PER_WORKER}"]
        assert line.rstrip().endswith(" -")


def test_cli_workers_refuses_without_a_reachable_dask_executor(home: Path) -> None:
    local = cli("workers", home=home, env={"SANDBOX_EXECUTOR": "local"})
    assert local.returncode == 1 and local.stdout == ""
    assert local.stderr.startswith("Error: the executor is local, not dask: set SANDBOX_EXEC")
    unset = cli("workers", home=home, env={"SANDBOX_EXECUTOR": "dask", "SANDBOX_DASK_ADDRESS": ""})
    assert unset.returncode == 1 and "set SANDBOX_DASK_ADDRESS" in unset.stderr
    zero = cli("workers", "--timeout", "0", home=home, env={"SANDBOX_EXECUTOR": "local"})
    assert zero.returncode == 1 and "--timeout must be a positive number" in zero.stderr
    env = {"SANDBOX_EXECUTOR": "dask", "SANDBOX_DASK_ADDRESS": UNREACHABLE}
    down = cli("workers", "--timeout", "1", home=home, env=env)
    assert down.returncode == 1 and "Traceback" not in down.stderr
    assert down.stderr.startswith(f"Error: cannot reach the Dask scheduler at {UNREACHABLE}: ")


def test_doctor_shows_the_cluster(dask_cluster: DaskCluster, home: Path, tmp_path: Path) -> None:
    address = dask_cluster({})
    store = tmp_path / "shared-store"
    env = {"SANDBOX_EXECUTOR": "dask", "SANDBOX_DASK_ADDRESS": address, "SANDBOX_STORE": str(store)}
    done = cli("doctor", "--json", home=home, env=env)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert rows["executor"] == "dask"
    assert rows["dask scheduler"] == f"{address} (reachable)"
    assert rows["dask workers"] == f"2 ({2 * SLOTS_PER_WORKER} slots, 0 in use)"
    assert rows["sandbox_kit on workers"].endswith(" on every worker")
    assert "on the scheduler" not in rows["dask version"]
    assert rows["registry"] == "SQLite, on this host like the whole cluster"
    assert rows["store"] == f"{store} (reachable from here)"


def test_doctor_says_why_the_cluster_is_not_there(home: Path) -> None:
    env = {"SANDBOX_EXECUTOR": "dask", "SANDBOX_DASK_ADDRESS": UNREACHABLE}
    rows = json.loads(cli("doctor", "--json", home=home, env=env).stdout)
    assert rows["dask scheduler"].startswith(f"cannot reach the Dask scheduler at {UNREACHABLE}")
    assert "dask workers" not in rows
    local = json.loads(cli("doctor", "--json", home=home).stdout)
    assert local["executor"] == "local"
    assert not {"dask scheduler", "store"} & set(local)
