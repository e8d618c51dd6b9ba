"""The Dask cluster the ``dask`` executor runs jobs on (issue 12): connecting to it, its
workers and their slots, and the checks ``sandbox-kit doctor`` shows.

Workers are ordinary ``dask worker ADDRESS --resources "slots=N"`` processes started from an
environment with sandbox_kit installed; each reads its own settings (``SANDBOX_DB_URL``,
``SANDBOX_STORE``, limits, isolation) from its environment. A job's attempt is one Dask
task whose key is ``JOB_ID#ATTEMPT`` and which holds ``resources={"slots": n}`` while it runs,
so the scheduler's accounting of each worker's resources is the cluster's accounting of slots.

Code sent to the scheduler or the workers from here is a nested function, which Dask pickles
by value: the scheduler needs no sandbox_kit, and a worker without it is reported, not broken.
dask is imported when a function here needs it, never on import: without the ``dask`` extra
this module loads and :func:`connect` says which ``pip install`` adds it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import psutil

from sandbox_kit.errors import ClusterError, reason_of

if TYPE_CHECKING:
    from distributed import Client

    from sandbox_kit.config import Settings

_DOCTOR_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One Dask worker as the scheduler sees it.

    Attributes:
        address: the worker's address, e.g. ``tcp://10.0.0.7:40123``.
        name: the worker's name (``dask worker --name``, else what Dask chose).
        host: the host part of the address.
        slots: the worker's ``slots`` resource (0: it runs no jobs).
        slots_used: slots held by the tasks running there.
        memory_bytes: the worker's memory limit (0: none).
        jobs: ids of the jobs running there (tasks that hold slots, keyed by job id).
    """

    address: str
    name: str
    host: str
    slots: int
    slots_used: int
    memory_bytes: int
    jobs: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return {**asdict(self), "jobs": list(self.jobs)}


def scheduler_address(settings: Settings) -> str:
    """The Dask scheduler's address the settings name.

    Raises:
        ClusterError: the executor is not ``dask``, or no address is set.
    """
    if settings.executor != "dask":
        raise ClusterError(
            f"the executor is {settings.executor}, not dask: set SANDBOX_EXECUTOR=dask and "
            "SANDBOX_DASK_ADDRESS=tcp://HOST:8786 to run jobs on a Dask cluster"
        )
    if not settings.dask_address:
        raise ClusterError(
            "the dask executor needs the scheduler's address: set "
            "SANDBOX_DASK_ADDRESS=tcp://HOST:8786"
        )
    return settings.dask_address


def connect(address: str, *, timeout: float = 10.0) -> Client:
    """A client of the Dask scheduler at ``address`` (not made the default client).

    Raises:
        ClusterError: dask is not installed, or the scheduler does not answer within
            ``timeout`` seconds.
    """
    try:
        from distributed import Client
    except ImportError:
        raise ClusterError(
            "the dask executor needs the dask extra: pip install 'sandbox_kit[dask]'",
            address=address,
        ) from None
    # Made in two steps so that a client that failed to connect can be closed here, while its
    # event loop runs: left to the garbage collector, it tries to close itself at interpreter
    # exit, after that loop has stopped, and prints a traceback.
    client = Client.__new__(Client)
    untyped: Any = client  # distributed's constructor and close() are not annotated
    try:
        untyped.__init__(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        reason = reason_of(exc)
    else:
        return client
    with contextlib.suppress(Exception):
        untyped.close(timeout=timeout)
    raise ClusterError(f"cannot reach the Dask scheduler at {address}: {reason}", address=address)


def workers(client: Client) -> list[WorkerInfo]:
    """The cluster's workers, by address, with their slots in use and their jobs."""

    def snapshot(dask_scheduler: Any) -> list[dict[str, Any]]:
        # Runs on the scheduler (pickled by value): plain data back, nothing of ours used.
        return [
            {
                "address": ws.address,
                "name": str(ws.name),
                "host": ws.host,
                "slots": ws.resources.get("slots", 0),
                "used": ws.used_resources.get("slots", 0),
                "memory": ws.memory_limit or 0,
                "jobs": sorted(
                    str(ts.key)
                    for ts in ws.processing
                    if "slots" in (ts.resource_restrictions or {})
                ),
            }
            for ws in dask_scheduler.workers.values()
        ]

    dask: Any = client  # run_on_scheduler is not annotated
    with _asking(client):
        rows: list[dict[str, Any]] = dask.run_on_scheduler(snapshot)
    return sorted(
        (
            WorkerInfo(
                address=row["address"],
                name=row["name"],
                host=row["host"],
                slots=int(row["slots"]),
                slots_used=int(row["used"]),
                memory_bytes=int(row["memory"]),
                jobs=tuple(str(key).split("#", 1)[0] for key in row["jobs"]),
            )
            for row in rows
        ),
        key=lambda w: w.address,
    )


def total_slots(client: Client) -> int:
    """The slots of all the cluster's workers together."""
    return sum(w.slots for w in workers(client))


def check_registry(db_url: str, client: Client) -> None:
    """Refuse a SQLite registry unless the scheduler and every worker are on this host.

    A SQLite file is shared only by processes on one host; jobs on workers elsewhere could not
    record their end in it.

    Raises:
        ClusterError: ``db_url`` is SQLite and some part of the cluster is on another host.
    """
    if not db_url.startswith("sqlite"):
        return
    parts = [("scheduler", _scheduler_of(client))]
    parts += [("worker", w.address) for w in workers(client)]
    for what, address in parts:
        host = host_of(address)
        if not is_this_host(host):
            raise ClusterError(
                f"the registry is a SQLite file, which only this host can share, but the Dask "
                f"{what} at {address} runs on {host}; set SANDBOX_DB_URL to a PostgreSQL "
                "database that this host and every worker can reach",
                address=address,
            )


def host_of(address: str) -> str:
    """The host part of a Dask address: ``tcp://[::1]:8786`` -> ``::1``."""
    return urlsplit(address if "://" in address else f"tcp://{address}").hostname or ""


def is_this_host(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine: loopback, ``localhost``, this
    machine's name, or one of its interfaces' addresses."""
    name = host.strip().strip("[]").lower()
    if not name:
        return False
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        if name == "localhost" or name in {socket.gethostname().lower(), socket.getfqdn().lower()}:
            return True
        try:
            resolved = {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
        except OSError:  # a name this host cannot resolve is not this host
            return False
        return bool(resolved) and all(is_this_host(a) for a in resolved)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback or address in _own_addresses()


def report(address: str, *, db_url: str | None = None) -> list[tuple[str, str]]:
    """The rows ``sandbox-kit doctor`` shows for the cluster: reachable or why not, dask's
    version there and here, the workers and their slots, sandbox_kit on the workers, and
    (given ``db_url``) whether the registry can be shared with them."""
    try:
        client = connect(address, timeout=_DOCTOR_TIMEOUT_S)
    except ClusterError as exc:
        return [("dask scheduler", str(exc))]
    import distributed

    import sandbox_kit

    dask: Any = client  # get_versions, run and close are not annotated
    rows = [("dask scheduler", f"{address} (reachable)")]
    try:
        with _asking(client):
            theirs = dask.get_versions()["scheduler"]["packages"].get("distributed")
            versions: dict[str, str | None] = dask.run(_version_probe())
        ours = str(getattr(distributed, "__version__", "?"))
        rows.append(
            ("dask version", ours if theirs == ours else f"{theirs} on the scheduler, {ours} here")
        )
        rows.append(("dask workers", _workers_line(workers(client))))
        rows.append(("sandbox_kit on workers", _versions_line(versions, sandbox_kit.__version__)))
        if db_url is not None:
            try:
                check_registry(db_url, client)
                shared = "SQLite, on this host like the whole cluster"
                rows.append(("registry", shared if db_url.startswith("sqlite") else "shared"))
            except ClusterError as exc:
                rows.append(("registry", str(exc)))
    except ClusterError as exc:
        rows.append(("dask cluster", str(exc)))
    finally:
        dask.close()
    return rows


def _version_probe() -> Any:
    def probe() -> str | None:
        # Runs on each worker (pickled by value, so a worker without sandbox_kit can answer).
        try:
            import sandbox_kit
        except ImportError:
            return None
        return str(sandbox_kit.__version__)

    return probe


def _workers_line(infos: list[WorkerInfo]) -> str:
    if not infos:
        return "none: start them with dask worker ADDRESS --resources slots=N"
    slots = sum(w.slots for w in infos)
    used = sum(w.slots_used for w in infos)
    line = f"{len(infos)} ({slots} slots, {used} in use)"
    idle = [w.address for w in infos if w.slots <= 0]
    if idle:
        line += f"; no slots resource on {', '.join(idle)} (start with --resources slots=N)"
    return line


def _versions_line(versions: dict[str, str | None], ours: str) -> str:
    if not versions:
        return "no workers"
    missing = sorted(a for a, v in versions.items() if v is None)
    other = sorted(f"{a} ({v})" for a, v in versions.items() if v is not None and v != ours)
    if not missing and not other:
        return f"{ours} on every worker"
    problems = []
    if missing:
        problems.append(f"not importable on {', '.join(missing)}")
    if other:
        problems.append(f"another version than this host's {ours} on {', '.join(other)}")
    return "; ".join(problems)


def _own_addresses() -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for addresses in psutil.net_if_addrs().values():
        for entry in addresses:
            if entry.family in (socket.AF_INET, socket.AF_INET6):
                with contextlib.suppress(ValueError):
                    found.add(ipaddress.ip_address(entry.address.split("%", 1)[0]))
    return found


def _scheduler_of(client: Client) -> str:
    return str(getattr(client.scheduler, "address", "") or "")


@contextlib.contextmanager
def _asking(client: Client) -> Iterator[None]:
    """A scheduler that stops answering mid-conversation is a ClusterError too."""
    try:
        yield
    except (OSError, TimeoutError) as exc:
        address = _scheduler_of(client)
        raise ClusterError(
            f"lost the Dask scheduler at {address}: {reason_of(exc)}", address=address
        ) from None
