# Registers sandbox_kit.model_api.on_stop, then waits to be stopped: on SIGTERM the callback
# records the best "solution" it has (issue 15), with the reason the sandbox gave and the
# thread it ran on.
import threading
import time

from sandbox_kit.model_api import metric, on_stop, outcome


def save(reason: str) -> None:
    kind = "time_limit" if reason == "timeout" else "interrupted"
    thread = threading.current_thread().name
    outcome(kind, objective=1234.5, metrics={"mip_gap": 0.125}, message=f"{reason} on {thread}")


on_stop(save)
metric(incumbent=1234.5)
print("ready", flush=True)
while True:
    time.sleep(0.2)
