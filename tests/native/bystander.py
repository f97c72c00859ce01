"""A process that records every catchable signal it receives, for the namespace tests' scripts
(`state_fuzz.py`, `link_attacks.py`): run `BYSTANDER` with `python -c CODE LOG`; it prints
`ready`, then appends each signal's number to LOG."""

BYSTANDER = """
import signal, sys, time
log = sys.argv[1]
def record(signum, _frame):
    with open(log, "a") as handle:
        handle.write(f"{signum}\\n")
for signum in signal.valid_signals():
    if signum not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD):
        try:
            signal.signal(signum, record)
        except (OSError, ValueError):
            pass
print("ready", flush=True)
while True:
    time.sleep(3600)
"""
