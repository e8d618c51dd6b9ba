# Hostile model: change another job's finished results (an input of later runs).
import json
import os
import sys

args = json.loads(sys.argv[1])
folder = args["other_result"]
attempts = []


def attempt(target, action, fn):
    try:
        fn()
    except Exception as exc:
        attempts.append({"target": target, "action": action, "ok": False, "error": repr(exc)})
    else:
        attempts.append({"target": target, "action": action, "ok": True})


attempt(folder, "list", lambda: os.listdir(folder))
attempt(
    os.path.join(folder, "result.json"),
    "overwrite",
    lambda: open(os.path.join(folder, "result.json"), "w").write('{"objective": -1}'),
)
attempt(
    os.path.join(folder, "planted.csv"),
    "create",
    lambda: open(os.path.join(folder, "planted.csv"), "x").write("a,b\n"),
)
escaped = any(a["ok"] for a in attempts)
print(json.dumps({"escape": "other_result", "attempts": attempts, "escaped": escaped}))
