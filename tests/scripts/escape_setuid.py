# Hostile model: gain privileges through a setuid-root binary (a copy of `id` made setuid root
# by the test, when given, and the system's `su`); report the capability sets and no_new_privs.
import json
import os
import subprocess
import sys

args = json.loads(sys.argv[1])
status = dict(
    line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line
)
report = {
    "uid": os.getuid(),
    "euid": os.geteuid(),
    "no_new_privs": status.get("NoNewPrivs", "").strip(),
    "cap_eff": status.get("CapEff", "").strip(),
    "cap_prm": status.get("CapPrm", "").strip(),
    "cap_bnd": status.get("CapBnd", "").strip(),
}
escaped = report["euid"] == 0 or int(report["cap_eff"] or "0", 16) != 0
if args.get("suid"):
    try:
        out = subprocess.run([args["suid"], "-u"], capture_output=True, text=True, timeout=10)
        report["suid_euid"] = out.stdout.strip()
        report["suid_rc"] = out.returncode
        escaped = escaped or out.stdout.strip() == "0"
    except (OSError, subprocess.SubprocessError) as exc:
        report["suid_error"] = repr(exc)
try:
    out = subprocess.run(["/usr/bin/su", "-c", "id -u"], input="", capture_output=True,
                         text=True, timeout=10)
    report["su_rc"] = out.returncode
    report["su_out"] = out.stdout.strip()
    escaped = escaped or out.stdout.strip() == "0"
except (OSError, subprocess.SubprocessError) as exc:
    report["su_error"] = repr(exc)
print(json.dumps({"escape": "setuid", **report, "escaped": escaped}))
