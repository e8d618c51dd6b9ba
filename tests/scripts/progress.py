import sys
import time

print("start")
for pct in range(0, 101, 20):
    sys.stdout.write(f"\rprogress {pct}%")
    sys.stdout.flush()
    time.sleep(0.05)
sys.stdout.write("\n")
print("done")
