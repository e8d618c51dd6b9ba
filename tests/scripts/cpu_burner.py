print("burning", flush=True)
while True:
    pass
