"""The reproducible recipe behind the bundled demo model, and the detection evaluator (`roadedge train`, `roadedge eval`)."""
from roadedge.core.telemetry import quiet_openvino

quiet_openvino()  # before anything imports openvino (roadedge/core/telemetry.py)
