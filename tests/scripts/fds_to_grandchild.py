# Hands its stdout and stderr to a grandchild in a new session, closes its own copies and
# hangs: the pipes stay open, held by a process the model does not wait for.
import os
import subprocess
import sys
import time

subprocess.Popen(
    [sys.executable, "-c", "import os, time; os.setsid(); time.sleep(3600)"], close_fds=False
)
print("handed over", flush=True)
os.close(1)
os.close(2)
while True:
    time.sleep(1)
