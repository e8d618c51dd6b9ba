# Never writes a byte and never ends.
import time

while True:
    time.sleep(1)
