# Closes its own stdout and stderr, then hangs: the supervisor sees EOF on both pipes while the
# model still runs (issue 9: timeout, cancel and heartbeat must still fire).
import os
import time

print("closing my descriptors", flush=True)
os.close(1)
os.close(2)
while True:
    time.sleep(1)
