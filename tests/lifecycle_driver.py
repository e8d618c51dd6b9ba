"""One process of the randomized lifecycle test: runs a list of operations, reports events.

``python tests/lifecycle_driver.py URL LIMIT`` with a JSON list of operations on stdin; prints
a JSON list of events: ``["ended", job_id, status]`` for every terminal transition this process
made, ``["over", ...]`` whenever it saw the running jobs hold more than LIMIT CPU slots (or two
SO jobs, or two jobs holding a token of the one-token ``gurobi`` pool, or two running jobs
sharing a slot, or a job holding more CPU slots than LIMIT or fewer than one).
"""

from __future__ import annotations

import json
import sys

from sandbox_kit.dbapi import Connection
from sandbox_kit.errors import NotFoundError
from sandbox_kit.lifecycle import Lifecycle

TOKENS = {"gurobi": 1}  # one licence token


def main() -> None:
    url, limit = sys.argv[1], int(sys.argv[2])
    ops = json.loads(sys.stdin.read())
    lc = Lifecycle(Connection(url))
    events: list[list[object]] = []
    for op in ops:
        kind, job_id = op[0], op[1]
        if kind == "submit":
            threads, tokens = op[3], op[4]
            lc.create(
                threads=threads,
                tokens=tokens,
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
            lc.claim(limit, {"SO": 1}, TOKENS)
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
            rows = st.run(
                "SELECT model_type, threads, tokens, slot FROM jobs WHERE status = 'running'"
            ).all()
        slots = sum(width for _, width, _, _ in rows)
        so_running = sum(kind == "SO" for kind, _, _, _ in rows)
        licensed = sum("gurobi" in names.split("+") for _, _, names, _ in rows)
        ids = [slot for _, _, _, slot in rows]
        widths_ok = all(1 <= width <= limit for _, width, _, _ in rows)
        if slots > limit or so_running > 1 or licensed > 1 or len(set(ids)) < len(ids):
            events.append(["over", slots, so_running, licensed, ids])
        elif not widths_ok:
            events.append(["over", "width", [width for _, width, _, _ in rows]])
    print(json.dumps(events))


if __name__ == "__main__":
    main()
