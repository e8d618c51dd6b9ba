import sys

for i in range(50):
    print(f"out {i}", flush=True)
    print(f"err {i}", file=sys.stderr, flush=True)
