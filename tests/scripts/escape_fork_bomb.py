# Hostile model: a fork bomb, bounded so the test stays safe for the machine: it tries to make
# `count` processes (each waits on a pipe), reports how many it got, then lets them all go.
import json
import os
import sys

args = json.loads(sys.argv[1])
wanted = args.get("count", 5000)
read_end, write_end = os.pipe()
children, error = [], None
for _ in range(wanted):
    try:
        pid = os.fork()
    except OSError as exc:
        error = repr(exc)
        break
    if pid == 0:
        os.close(write_end)
        os.read(read_end, 1)
        os._exit(0)
    children.append(pid)
os.close(write_end)
for pid in children:
    os.waitpid(pid, 0)
got = len(children)
print(json.dumps({"escape": "fork_bomb", "wanted": wanted, "got": got, "error": error,
                  "escaped": got >= wanted}))
