# Hostile model: append code to every stored model file (the next runs would execute it),
# its own file included.
import json
import os
import sys

args = json.loads(sys.argv[1])
attempts = []
targets = {os.path.abspath(__file__), *args["models"]}
for folder, _dirs, files in os.walk(args["models_dir"]):
    targets.update(os.path.join(folder, name) for name in files)
for path in sorted(targets):
    try:
        with open(path, "a") as fh:
            fh.write("\nprint('injected')\n")
    except Exception as exc:
        attempts.append({"target": path, "action": "append", "ok": False, "error": repr(exc)})
    else:
        attempts.append({"target": path, "action": "append", "ok": True})
escaped = any(a["ok"] for a in attempts)
print(json.dumps({"escape": "models", "attempts": attempts, "escaped": escaped}))
