"""roadedge: edge inference runtime for road-surface damage detection.

Packages, bottom to top (ARCHITECTURE.md; the import contracts in .importlinter):
roadedge.core (errors, files, labels, model metadata, MXNet artefacts) ->
edge (the runtime) -> converters -> training -> roadedge.cli (the command line).
"""
__version__ = "0.1.0"

from roadedge.core.telemetry import quiet_openvino  # noqa: E402

quiet_openvino()  # before anything imports openvino (roadedge/core/telemetry.py)
