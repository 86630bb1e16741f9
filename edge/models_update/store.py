"""The model versions kept on this device: <state_dir>/models/<dir>/ with NAME.xml, NAME.bin and NAME.json.

state.json (replaced atomically) records `current` and `previous` (each {name, version, sha256, dir}), the
versions this store installed (`installed`, the only folders it ever deletes: older ones beyond the previous)
and the versions refused (`rejected`: {version, sha256, reason}), so a broken version is not tried again and
again. Nothing else under state_dir is touched.
"""
import io
import json
import os
import re
import shutil
import threading

from roadedge.core.errors import RoadedgeError, file_error
from roadedge.core.fsutil import atomic_file

STATE = "state.json"
MODELS = "models"
REJECTED_KEPT = 50


def identity(entry):
    """(version, sha256) of a version record or candidate: what tells two versions apart."""
    return (str(entry.get("version")), entry.get("sha256"))


def folder_name(version, sha256):
    """A folder name for a version: its text made safe for a file name, plus the start of its sha256."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", str(version)).strip("._") or "v"
    return "{}-{}".format(safe[:60], (sha256 or "0" * 12)[:12])


class ModelStore(object):
    def __init__(self, state_dir):
        self.root = os.path.abspath(os.path.expanduser(state_dir))
        self.models = os.path.join(self.root, MODELS)
        self.state_path = os.path.join(self.root, STATE)
        self.lock = threading.Lock()
        try:
            os.makedirs(self.models, exist_ok=True)
        except OSError as err:
            raise file_error(self.models, err, "create") from None
        self.state = self._read()

    def _read(self):
        empty = {"current": None, "previous": None, "installed": [], "rejected": []}
        if not os.path.exists(self.state_path):
            return empty
        try:
            with io.open(self.state_path, encoding="utf-8") as handle:
                state = json.load(handle)
        except ValueError as err:
            raise RoadedgeError("{}: not valid JSON ({}); move it away to start the model store afresh".format(
                self.state_path, err)) from None
        except OSError as err:
            raise file_error(self.state_path, err, "read") from None
        if not isinstance(state, dict):
            raise RoadedgeError("{}: expected a JSON object (the model store's state)".format(self.state_path))
        empty.update(state)
        return empty

    def _write(self):
        try:
            with atomic_file(self.state_path, "w") as handle:
                json.dump(self.state, handle, indent=2, sort_keys=True)
        except OSError as err:
            raise file_error(self.state_path, err, "write") from None

    # -- what is there ---------------------------------------------------------------------------------------------
    @property
    def current(self):
        return self.state["current"]

    @property
    def previous(self):
        return self.state["previous"]

    def path_of(self, entry):
        """The .xml of a stored version."""
        return os.path.join(self.models, entry["dir"], entry["name"] + ".xml")

    def has(self, entry):
        return entry is not None and os.path.isfile(self.path_of(entry))

    def rejected(self, candidate):
        """The reason a version was refused before, or None."""
        for entry in self.state["rejected"]:
            if identity(entry) == identity(candidate):
                return entry["reason"]
        return None

    def staging(self):
        """A new empty folder inside the store for a download (the caller installs or discards it)."""
        folder = os.path.join(self.models, ".staging-{}".format(os.getpid()))
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        return folder

    # -- changes -----------------------------------------------------------------------------------------------------
    def install(self, staged, candidate):
        """Move a verified download into its own folder; returns its record (not yet current)."""
        with self.lock:
            name = folder_name(candidate["version"], candidate["sha256"])
            target = os.path.join(self.models, name)
            if os.path.isdir(target):
                shutil.rmtree(target)
            os.replace(staged, target)
            if name not in self.state["installed"]:
                self.state["installed"].append(name)
                self._write()
            return {"name": candidate["name"], "version": str(candidate["version"]), "sha256": candidate["sha256"],
                    "dir": name}

    def activate(self, entry):
        """`entry` becomes current and the current one previous; folders beyond those two are removed."""
        with self.lock:
            current = self.state["current"]
            if current is None or identity(current) != identity(entry):
                self.state["previous"], self.state["current"] = current, entry
            self._prune()
            self._write()

    def roll_back(self, failed, reason):
        """The current version failed: the previous one is current again, the failed one is rejected."""
        with self.lock:
            if self.state["previous"] is not None and identity(self.state["current"] or {}) == identity(failed):
                self.state["current"], self.state["previous"] = self.state["previous"], None
            self._reject(failed, reason)
            self._prune()
            self._write()

    def reject(self, candidate, reason):
        with self.lock:
            self._reject(candidate, reason)
            self._write()

    def discard(self, entry):
        """A version installed but refused: its folder goes (unless it is current or previous)."""
        with self.lock:
            self._prune()
            self._write()

    def _reject(self, candidate, reason):
        rejected = [e for e in self.state["rejected"] if identity(e) != identity(candidate)]
        rejected.append({"version": str(candidate["version"]), "sha256": candidate["sha256"], "reason": reason})
        self.state["rejected"] = rejected[-REJECTED_KEPT:]

    def _prune(self):
        keep = {entry["dir"] for entry in (self.state["current"], self.state["previous"]) if entry}
        for name in list(self.state["installed"]):
            if name not in keep:
                shutil.rmtree(os.path.join(self.models, name), ignore_errors=True)
                self.state["installed"].remove(name)

    def folders(self):
        """The version folders on disk (tests and the README's promise: current and previous only)."""
        return sorted(name for name in os.listdir(self.models) if not name.startswith("."))
