"""Reads DATA_SOURCE_DIR, then tries to change it every way it can; prints what happened."""

import json
import os

source = os.environ["DATA_SOURCE_DIR"]
names = sorted(os.listdir(source))
first = os.path.join(source, names[0])
report = {"names": names, "read": open(first).read()}
attempts = {
    "create": lambda: open(os.path.join(source, "new.csv"), "w").write("x"),
    "append": lambda: open(first, "a").write("x"),
    "remove": lambda: os.remove(first),
    "chmod": lambda: os.chmod(first, 0o666),
    "rename": lambda: os.rename(first, first + ".moved"),
}
for name, attempt in attempts.items():
    try:
        attempt()
        report[name] = "changed"
    except OSError as exc:
        report[name] = type(exc).__name__
print(json.dumps(report))
