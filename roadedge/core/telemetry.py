"""Keep OpenVINO's usage telemetry out of roadedge's processes.

Importing `openvino` (2024 and later) imports its converter, `openvino.tools.ovc`, which sends a usage event to
Google Analytics from a background thread unless a consent file (`~/intel/openvino_telemetry`) says no, and counts
imports in `~/intel/stats`. A road crew's device should not call out to a third party or write into its user's home
for that. OpenVINO and NNCF fall back to stubs that send nothing when
the `openvino_telemetry` package is missing; `quiet_openvino()` makes it look missing to this process, before
anything imports openvino. ROADEDGE_OPENVINO_TELEMETRY=1 leaves OpenVINO's own behaviour alone.
"""
import os
import sys

ALLOW = "ROADEDGE_OPENVINO_TELEMETRY"


def quiet_openvino():
    """Make `import openvino_telemetry` fail in this process (once openvino has been imported it is too late)."""
    if os.environ.get(ALLOW) == "1" or "openvino_telemetry" in sys.modules:
        return
    sys.modules["openvino_telemetry"] = None  # the import system raises ImportError for a None entry
