# Hostile model: connect to a service listening on the host's loopback (e.g. PostgreSQL).
import json
import socket
import sys

args = json.loads(sys.argv[1])
try:
    with socket.create_connection(("127.0.0.1", args["port"]), timeout=3) as sock:
        sock.sendall(b"hello")
except OSError as exc:
    result = {"ok": False, "error": repr(exc)}
else:
    result = {"ok": True}
print(json.dumps({"escape": "loopback", "port": args["port"], **result, "escaped": result["ok"]}))
