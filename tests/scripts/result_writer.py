import json
import os

cfg = json.loads(os.environ["CONFIG"])
out = os.environ["SANDBOX_RESULT_DIR"]
with open(os.path.join(out, "result.json"), "w") as fh:
    json.dump(
        {
            "outcome": "optimal",
            "objective": cfg.get("objective", 1.5),
            "metrics": {"gap": 0.0, "nodes": 3},
            "message": "ok",
        },
        fh,
    )
source = os.environ.get("DATA_SOURCE_DIR")
print("source dir:", source)
if source:
    print("source result:", open(os.path.join(source, "result.json")).read())
