"""One OpenVINO Core for the whole process.

OpenVINO's CPU plugin gives the thread that loads it an alternate signal stack and, when its Core goes, puts back
the one it found. Two Cores that overlap and go in the order they came (the watchdog opening a new backend while the
old one closes, a model swap, a test after another) leave the thread's alternate stack pointing at unmapped memory;
Python runs its signal handlers there, so the next Ctrl-C or SIGTERM is a segmentation fault (measured with
sigaltstack: Core A, Core B, del A, del B). One Core, made once and kept, never unloads the plugin; it also saves
loading it again.
"""
import threading

_lock = threading.Lock()
_core = []


def shared_core():
    """The process's openvino.Core (made on first use)."""
    with _lock:
        if not _core:
            import openvino as ov

            _core.append(ov.Core())
        return _core[0]
