# Hostile model: write files outside its job folder (system folders, the sandbox's home, the
# parent of its job folder, root's home, shared temporary folders). The test checks the host.
import json
import os
import sys

args = json.loads(sys.argv[1])
token = args["token"]
allowed = [os.environ["SANDBOX_JOB_DIR"], os.environ["SANDBOX_RESULT_DIR"], "/tmp", "/dev/shm"]
attempts = []
for folder in args["folders"]:
    path = os.path.join(folder, f"escape-{token}")
    try:
        with open(path, "x") as fh:
            fh.write("escaped")
    except OSError as exc:
        attempts.append({"target": path, "ok": False, "error": repr(exc)})
    else:
        attempts.append({"target": path, "ok": True})
outside = [
    a["target"] for a in attempts
    if a["ok"] and not any(a["target"].startswith(f + "/") for f in allowed)
]
print(json.dumps({"escape": "write_outside", "attempts": attempts, "outside": outside,
                  "escaped": bool(outside)}))
