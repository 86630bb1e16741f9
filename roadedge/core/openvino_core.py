"""One OpenVINO Core for the whole process.

OpenVINO's CPU plugin gives the thread that loads it an alternate signal stack and, when its Core goes, puts back
the one it found. Two Cores that overlap and go in the order they came (the watchdog opening a new backend while the
old one closes, a model swap, a test after another) leave the thread's alternate stack pointing at unmapped memory;
Python runs its signal handlers there, so the next Ctrl-C or SIGTERM is a segmentation fault (measured with
sigaltstack: Core A, Core B, del A, del B). One Core, made once and kept, never unloads the plugin; it also saves
loading it again.

`import openvino` also imports its model converter (`openvino.convert_model`, from `openvino.tools.ovc`), which
loads the TensorFlow, PyTorch and other frontends: 13 MiB of a runtime that only compiles IRs (41 against 54 MiB
after the import). `import_openvino` leaves the converter to its first use.
"""
import sys
import threading

_lock = threading.Lock()
_core = []


CONVERTER = "openvino.tools.ovc"


def import_openvino():
    """The openvino package, imported (if this is the first import) without its model converter; `convert_model`
    imports the converter when first read, and `import openvino.tools.ovc` works as usual."""
    if "openvino" in sys.modules or CONVERTER in sys.modules:
        import openvino

        return openvino
    sys.modules[CONVERTER] = None  # openvino/__init__ imports the converter in a try that ignores ImportError
    try:
        import openvino
    finally:
        if sys.modules.get(CONVERTER, 0) is None:
            del sys.modules[CONVERTER]
    if not hasattr(openvino, "convert_model"):
        openvino.__getattr__ = _converter_on_first_use
    return openvino


def _converter_on_first_use(name):
    """PEP 562 module __getattr__ for openvino: `convert_model` from the converter, imported now."""
    if name != "convert_model":
        raise AttributeError("module 'openvino' has no attribute {!r}".format(name))
    from openvino.tools.ovc import convert_model

    sys.modules["openvino"].convert_model = convert_model
    return convert_model


def shared_core():
    """The process's openvino.Core (made on first use)."""
    with _lock:
        if not _core:
            _core.append(import_openvino().Core())
        return _core[0]
