"""One process of the randomized lifecycle test: runs a list of operations, reports events.

``python tests/lifecycle_driver.py URL LIMIT`` with a JSON list of operations on stdin; prints
a JSON list of events: ``["ended", job_id, status]`` for every terminal transition this process
made, ``["over", ...]`` whenever it saw more than LIMIT jobs running (or two SO jobs, or two
running jobs sharing a slot).
"""

from __future__ import annotations

import json
import sys

from sandbox_kit.dbapi import Connection
from sandbox_kit.errors import NotFoundError
from sandbox_kit.lifecycle import Lifecycle


def main() -> None:
    url, limit = sys.argv[1], int(sys.argv[2])
    ops = json.loads(sys.stdin.read())
    lc = Lifecycle(Connection(url))
    events: list[list[object]] = []
    for op in ops:
        kind, job_id = op[0], op[1]
        if kind == "submit":
            lc.create(
                id=job_id,
                model_id=None,
                model_type=op[2],
                model_name="m",
                model_version=1,
                model_sha256="0" * 64,
                config="{}",
                data_source_id=None,
                timeout_s=None,
                log_path="-",
                result_dir="-",
                spec="{}",
            )
        elif kind == "claim":
            lc.claim(limit, {"SO": 1})
        elif kind == "cancel":
            try:
                if lc.cancel(job_id).ended:
                    events.append(["ended", job_id, "cancelled"])
            except NotFoundError:
                pass
        elif kind == "finish" and lc.finish(job_id, op[2]):
            events.append(["ended", job_id, op[2]])
        elif kind == "lost" and lc.mark_lost(job_id, "test"):
            events.append(["ended", job_id, "lost"])
        with lc.conn.read() as st:
            (running,) = st.run("SELECT COUNT(*) FROM jobs WHERE status = 'running'").one() or (0,)
            so = st.run("SELECT COUNT(*) FROM jobs WHERE status = 'running' AND model_type = 'SO'")
            (so_running,) = so.one() or (0,)
            shared = st.run(
                "SELECT slot FROM jobs WHERE status = 'running' GROUP BY slot HAVING COUNT(*) > 1"
            ).all()
        if running > limit or so_running > 1 or shared:
            events.append(["over", running, so_running, len(shared)])
    print(json.dumps(events))


if __name__ == "__main__":
    main()
