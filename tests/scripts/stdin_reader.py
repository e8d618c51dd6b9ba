import sys

data = sys.stdin.read()
print(f"stdin gave {len(data)} bytes")
