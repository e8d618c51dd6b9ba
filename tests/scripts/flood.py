import json
import os

n = json.loads(os.environ["CONFIG"]).get("lines", 100000)
write = os.sys.stdout.write
for i in range(n):
    write(f"line {i}\n")
