import json
import os
import time

cfg = json.loads(os.environ["CONFIG"])
for i in range(cfg.get("lines", 20)):
    print(f"tick {i}", flush=True)
    time.sleep(cfg.get("every", 0.1))
