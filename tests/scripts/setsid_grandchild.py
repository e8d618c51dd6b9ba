# Starts a grandchild that escapes the process group with setsid() and writes its pid to a
# file, then the model itself sleeps (or exits at once with argument "exit").
import os
import subprocess
import sys
import time

pidfile = os.path.join(os.environ["SANDBOX_RESULT_DIR"], "grandchild.pid")
child = subprocess.Popen(
    [sys.executable, "-c", "import os, time; os.setsid(); time.sleep(3600)"],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)
with open(pidfile, "w") as fh:
    fh.write(str(child.pid))
print("grandchild", child.pid, flush=True)
if os.environ.get("CONFIG", "{}") != '{"exit":true}':
    while True:
        time.sleep(1)
