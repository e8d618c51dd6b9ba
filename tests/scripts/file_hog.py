import os

with open(os.path.join(os.environ["SANDBOX_JOB_DIR"], "big.bin"), "wb") as fh:
    while True:
        fh.write(b"\0" * (1 << 20))
