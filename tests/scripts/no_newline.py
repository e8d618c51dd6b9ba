import sys

print("first line")
sys.stdout.write("last words without newline")
