"""The original specification's sample model (prints progress for four seconds, exits 0)."""

import json
import os
import time
from datetime import datetime

job_id = os.getenv("JOB_ID", "unknown")
model_type = os.getenv("MODEL_TYPE", "DMO")
config = json.loads(os.getenv("CONFIG", "{}"))
print(f"[{datetime.now().isoformat()}] Starting {model_type} optimization")
print(f"Job ID: {job_id}")
print(f"Configuration: {config}")
print("Loading market data from database...")
time.sleep(1)
print("Data loaded successfully: 1000 records")
print("Running optimization algorithm...")
time.sleep(2)
print("Optimization converged after 15 iterations")
print("Objective value: 125436.78")
print("Writing results to database...")
time.sleep(1)
print(f"[{datetime.now().isoformat()}] {model_type} optimization completed successfully")
