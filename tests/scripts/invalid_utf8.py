import os

os.write(1, b"caf\xe9 \xff\xfe ok\n")
os.write(1, b"fine \xc3\xa9\n")
