"""Fixtures of the Dask executor's tests (issue 12): a real ``LocalCluster`` and a real S3 server.

Import the fixtures into a test module (``from tests.dask_fixtures import dask_cluster``).

``dask_cluster(env)`` starts a cluster of two worker processes (nannies), each with
``resources={"slots": 2}``, two threads and its own scratch folder, and returns the scheduler's
address. ``env`` is set in the workers' environment (a nanny's ``env=``: set in the worker
process before it starts). Every cluster is closed at teardown and no process it started is
left behind.

``s3_store_url`` runs moto's S3 server on a free local port, creates a fresh bucket and points
the AWS settings of this process at it (``AWS_ENDPOINT_URL``, which botocore, hence s3fs,
reads), yielding ``s3://BUCKET/prefix``.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing.resource_tracker
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

DaskCluster = Callable[[dict[str, str]], str]
SLOTS_PER_WORKER = 2


def hold_slot(release: str) -> bool:
    """A task that runs until the file ``release`` exists (at most two minutes); True then."""
    deadline = time.monotonic() + 120
    while not os.path.exists(release):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[DaskCluster]:
    """A factory: ``dask_cluster(env) -> scheduler address``; clusters close at teardown."""
    from distributed import LocalCluster

    # The interpreter's resource tracker (started by the first multiprocessing queue, and
    # shared for the life of this process) is not one of the cluster's processes.
    multiprocessing.resource_tracker.ensure_running()
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    clusters: list[LocalCluster] = []

    def start(env: dict[str, str]) -> str:
        cluster = _new_cluster(env, tmp_path / f"dask-{len(clusters)}")
        clusters.append(cluster)
        return str(cluster.scheduler_address)

    yield start
    for cluster in clusters:
        cluster.close()
    started = [p for p in me.children(recursive=True) if p.pid not in before]
    _, alive = psutil.wait_procs(started, timeout=30)
    assert not alive, f"processes left by the Dask cluster: {alive}"


def _new_cluster(env: dict[str, str], folder: Path) -> Any:
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=2,
        resources={"slots": SLOTS_PER_WORKER},
        host="127.0.0.1",
        scheduler_port=0,
        dashboard_address=None,
        # Without a dashboard the scheduler still serves /health and /metrics, by default on
        # port 8787: a random port instead, so that clusters of parallel runs do not collide.
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        # A nanny passes `env` to its worker process; each worker makes its own
        # `worker-*` folder under dask-scratch-space/ in `local_directory`.
        env=env,
        local_directory=str(folder),
        silence_logs=logging.ERROR,
    )


@contextlib.contextmanager
def local_cluster(env: dict[str, str], folder: Path) -> Iterator[str]:
    """The same cluster for a whole test module: ``with local_cluster(env, folder) as address``."""
    cluster = _new_cluster(env, folder)
    try:
        yield str(cluster.scheduler_address)
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def _moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    # moto's server logs every request through werkzeug; keep the test output readable.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_store_url(_moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://BUCKET/prefix`` on a fresh bucket of a local S3 server; AWS settings set."""
    import boto3

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "sandbox-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sandbox-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", _moto_endpoint)
    bucket = f"sandbox-{secrets.token_hex(6)}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/prefix"
