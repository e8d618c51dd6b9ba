"""Writes result.json with the outcome CONFIG asks for, after sleeping, then exits as asked."""

import json
import os
import sys
import time

cfg = json.loads(os.environ["CONFIG"])
time.sleep(cfg.get("sleep", 0))
print("outcome", cfg.get("outcome", "optimal"), "objective", cfg.get("objective", 1.0))
source = os.environ.get("DATA_SOURCE_DIR")
if source:
    print("data:", sorted(os.listdir(source)))
with open(os.path.join(os.environ["SANDBOX_RESULT_DIR"], "result.json"), "w") as fh:
    json.dump(
        {
            "outcome": cfg.get("outcome", "optimal"),
            "objective": cfg.get("objective", 1.0),
            "metrics": {"scale": cfg.get("scale", 1.0)},
        },
        fh,
    )
sys.exit(cfg.get("exit", 0))
