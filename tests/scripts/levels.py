import logging
import sys

logging.basicConfig(level=logging.DEBUG)
print("plain stdout")
print("ERROR: explicit error on stdout")
print("[WARNING] bracketed warning")
logging.debug("debug via logging")
logging.info("info via logging")
print("plain stderr", file=sys.stderr)
try:
    1 / 0
except ZeroDivisionError:
    import traceback

    traceback.print_exc(file=sys.stdout)
print("after the traceback")
