# Hostile model: ptrace (PTRACE_ATTACH), read the memory of, or signal another process: the
# victims outside the jail named by pid (another job, the supervisor), and whatever it can see.
import ctypes
import json
import os
import sys

PTRACE_ATTACH, PTRACE_DETACH, __WALL = 16, 17, 0x40000000
args = json.loads(sys.argv[1])
# Given reversed, so this process's own command line (and bwrap's) does not carry it.
marker = args["marker_reversed"][::-1].encode()
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long


def is_victim(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return marker in fh.read()
    except OSError:
        return False


attempts = []
# Everything visible too, unless told not to (the unjailed control must not stop the host's
# processes).
visible = []
if args.get("scan", True):
    visible = [int(n) for n in os.listdir("/proc") if n.isdigit() and int(n) != os.getpid()]
for pid in sorted(set(args["pids"]) | set(visible)):
    victim = is_victim(pid)
    entry = {"pid": pid, "victim": victim}
    try:
        os.kill(pid, 0)
        entry["signal"] = True
    except OSError as exc:
        entry["signal"] = False
        entry["signal_error"] = exc.errno
    if libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0:
        entry["attach"] = True
        try:
            os.waitpid(pid, __WALL)  # the tracee stops; let it go again
        except OSError:
            pass
        libc.ptrace(PTRACE_DETACH, pid, None, None)
    else:
        entry["attach"] = False
        entry["attach_error"] = ctypes.get_errno()
    try:
        with open(f"/proc/{pid}/mem", "rb") as fh:
            fh.read(1)
        entry["mem"] = True
    except OSError as exc:
        entry["mem"] = False
        entry["mem_error"] = exc.errno
    attempts.append(entry)
escaped = any(a["victim"] and (a["signal"] or a["attach"] or a["mem"]) for a in attempts)
print(json.dumps({"escape": "ptrace", "visible": visible, "attempts": attempts,
                  "escaped": escaped}))
