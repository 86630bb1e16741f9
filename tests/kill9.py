"""Kill a child with kill -9 in the middle of its work, for the tests that check what a killed writer leaves."""
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def kill_9_when(argv, ready, attempts=5, timeout=120):
    """Run `python3 ARGV(attempt)` (this checkout's roadedge) and SIGKILL it as soon as `ready(attempt)` is true;
    should the child finish first, try again with the next attempt. -> the attempt that was killed, or None."""
    for attempt in range(attempts):
        child = subprocess.Popen([sys.executable] + [str(a) for a in argv(attempt)], cwd=ROOT,
                                 env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        deadline = time.time() + timeout
        try:
            while child.poll() is None and time.time() < deadline:
                if ready(attempt):
                    child.send_signal(signal.SIGKILL)
                    break
                time.sleep(0.001)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()
        if child.returncode == -signal.SIGKILL:
            return attempt
    return None
