import sys

sys.stdout.write("x" * 200_000 + "\n")
sys.stdout.write("é" * 40_000 + "\n")
