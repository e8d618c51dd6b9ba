# A well-behaved model: numpy and scipy from the read-only venv, a small LP, result.json in the
# result folder, a scratch file in /tmp.
import json
import os
import socket
import sys

import numpy as np
from scipy.optimize import linprog

res = linprog(np.array([1.0, 2.0]), A_ub=[[-1.0, -1.0]], b_ub=[-3.0], bounds=[(0, None)] * 2)
with open("/tmp/scratch.txt", "w") as fh:
    fh.write("scratch")
result_dir = os.environ["SANDBOX_RESULT_DIR"]
with open(os.path.join(result_dir, "result.json"), "w") as fh:
    json.dump({"outcome": "optimal", "objective": float(res.fun)}, fh)
print(json.dumps({
    "objective": float(res.fun),
    "numpy": np.__version__,
    "uid": os.getuid(),
    "pid": os.getpid(),
    "cwd": os.getcwd(),
    "home": os.path.expanduser("~"),
    "hostname": socket.gethostname(),
    "interfaces": [name for _, name in socket.if_nameindex()],
    "prefix": sys.prefix,
}))
