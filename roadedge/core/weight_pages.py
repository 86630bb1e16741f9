"""Give back the pages of model weights a process reads while compiling a model.

OpenVINO maps an IR's .bin (or a cached blob) into the process and reads every weight while compiling; the CPU plugin
keeps its own reordered copy, yet the mapped pages it read stay counted in the process's resident memory: `roadedge
run` with ResNet-50 SSD 300 at f32 (104 MiB of weights) peaked at 465 MiB, 368 MiB with them given back as it compiled.
While a model compiles, `WeightPages` tells the kernel every few milliseconds that the process no longer needs those
pages; whatever OpenVINO reads again faults back in, so only what is being read at the moment stays resident.

The advice depends on whether the mapping can go away meanwhile:
- a shared read-only mapping that holds a constant of a model the caller keeps alive (`pinned`) stays mapped: its pages
  are dropped with MADV_DONTNEED, and the file's pages stay in the page cache, so reading them again costs nothing;
- any other mapping of the weights file, or of a blob in the cache folder, is OpenVINO's to unmap, and its address range
  could be reused between reading /proc/self/maps and the call: there MADV_PAGEOUT, which never discards data whatever
  the range holds by then (the kernel writes back or swaps what it reclaims), at the price of evicting those pages from
  the page cache, so the next start reads them from disk.
Linux only; elsewhere, or where the kernel refuses (MADV_PAGEOUT needs Linux 5.4), nothing is given back.
"""
import ctypes
import os
import sys
import threading
from collections import namedtuple

MADV_DONTNEED, MADV_PAGEOUT = 4, 21
INTERVAL_S = 0.005
RESCAN = 10  # intervals between reads of /proc/self/maps once the weights' mappings are known

Mapping = namedtuple("Mapping", "start end perms path")


def _madvise():
    if not sys.platform.startswith("linux"):
        return None
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise


def file_mappings(maps_text, needles=None):
    """The file-backed mappings listed in the text of /proc/<pid>/maps (with `needles`, only lines holding one)."""
    mappings = []
    for line in maps_text.splitlines():
        if needles is not None and not any(needle in line for needle in needles):
            continue
        fields = line.split(None, 5)
        if len(fields) < 6 or not fields[5].startswith("/"):
            continue
        start, end = (int(address, 16) for address in fields[0].split("-"))
        mappings.append(Mapping(start, end, fields[1], fields[5]))
    return mappings


class WeightPages:
    """While the `with` body runs (and once at its end), give back the pages of the read-only mappings of `files` and
    of the files in `folders`; `pinned`: addresses inside mappings the caller keeps mapped throughout."""

    def __init__(self, files=(), folders=(), pinned=(), interval_s=INTERVAL_S):
        self.files = {os.path.realpath(path) for path in files if path}
        self.folders = tuple(os.path.join(os.path.realpath(folder), "") for folder in folders if folder)
        self.pinned, self.interval_s = tuple(pinned), interval_s
        self.needles = tuple(self.files) + self.folders  # most of the process's ~400 mappings are libraries
        self.madvise = _madvise()
        self.stop, self.thread = threading.Event(), None

    def wanted(self, mapping):
        return "w" not in mapping.perms and (mapping.path in self.files or mapping.path.startswith(self.folders))

    def advice(self, mapping):
        pinned = any(mapping.start <= address < mapping.end for address in self.pinned)
        return MADV_DONTNEED if pinned and mapping.perms[3] == "s" else MADV_PAGEOUT

    def mappings(self):
        """The wanted mappings now, from /proc/self/maps ([] where it cannot be read)."""
        try:
            with open("/proc/self/maps") as maps:
                return [m for m in file_mappings(maps.read(), self.needles) if self.wanted(m)]
        except OSError:
            return []

    def give_back(self, mappings=None):
        """Advise `mappings` (default: the wanted ones now); the number of bytes advised."""
        if self.madvise is None:
            return 0
        advised = 0
        for mapping in self.mappings() if mappings is None else mappings:
            if self.madvise(mapping.start, mapping.end - mapping.start, self.advice(mapping)) == 0:
                advised += mapping.end - mapping.start
        return advised

    def _run(self):
        """Advise every interval; read /proc/self/maps (0.6 ms of a core with ~400 mappings) every interval until a
        wanted mapping shows, then every RESCAN intervals. Advising a range that has gone meanwhile is safe: a pinned
        range cannot go, and MADV_PAGEOUT never discards data."""
        known, passes = [], 0
        while not self.stop.wait(self.interval_s):
            if not known or passes % RESCAN == 0:
                known = self.mappings()
            self.give_back(known)
            passes += 1

    def __enter__(self):
        if self.madvise is not None and (self.files or self.folders):
            self.thread = threading.Thread(target=self._run, name="weight-pages", daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc_info):
        if self.thread is not None:
            self.stop.set()
            self.thread.join()
            self.give_back()
        return False


def trim_heap():
    """Return the C heap's free memory to the system (glibc's malloc_trim): compiling frees tens of megabytes that
    glibc would otherwise keep resident in its arenas. False where there is no malloc_trim."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL(None).malloc_trim(0))
    except (OSError, AttributeError):
        return False


def constant_address(model):
    """The address of the largest constant's data in an ov.Model (the mapping holding it lives as long as the model);
    None when it has no constants."""
    constants = [op for op in model.get_ordered_ops() if op.get_type_name() == "Constant"]
    if not constants:
        return None
    try:
        return max(constants, key=lambda op: op.get_byte_size()).data.ctypes.data
    except (RuntimeError, TypeError, ValueError):  # an element type numpy cannot view
        return None
