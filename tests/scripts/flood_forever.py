# Writes as fast as it can, for ever.
import sys

line = "x" * 100 + "\n"
while True:
    sys.stdout.write(line)
