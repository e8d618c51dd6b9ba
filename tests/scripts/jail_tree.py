# A model with a grandchild that escapes with setsid(); the marker (argv[1]) is on both command
# lines so the test can find them from outside. SIGTERM ends the model with exit code 3; with
# "exit" as argv[2] the model exits at once, leaving the grandchild behind.
import os
import signal
import subprocess
import sys
import time

marker = sys.argv[1]
signal.signal(signal.SIGTERM, lambda *_: (print("model got SIGTERM", flush=True), sys.exit(3)))
child = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(600)", marker],
    start_new_session=True,
)
print("ready", child.pid, flush=True)
if sys.argv[2:] == ["exit"]:
    os._exit(0)
while True:
    time.sleep(1)
