"""roadedge: edge inference runtime for road-surface damage detection (the runtime package)."""
from roadedge.core.telemetry import quiet_openvino

quiet_openvino()  # before anything imports openvino (roadedge/core/telemetry.py)
