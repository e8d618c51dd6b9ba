# Hostile model: read another job's log (and list the logs folder).
import json
import os
import sys

args = json.loads(sys.argv[1])
attempts = []
for action, target, fn in [
    ("list", os.path.dirname(args["other_log"]), lambda: os.listdir(os.path.dirname(args["other_log"]))),
    ("read", args["other_log"], lambda: open(args["other_log"], "rb").read()),
]:
    try:
        fn()
    except Exception as exc:
        attempts.append({"target": target, "action": action, "ok": False, "error": repr(exc)})
    else:
        attempts.append({"target": target, "action": action, "ok": True})
escaped = any(a["ok"] for a in attempts)
print(json.dumps({"escape": "other_log", "attempts": attempts, "escaped": escaped}))
