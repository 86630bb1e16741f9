"""Dataset and model conversion: VOC XML -> SageMaker, S3 upload, segmentation layout, MXNet -> OpenVINO."""
from roadedge.core.telemetry import quiet_openvino

quiet_openvino()  # before anything imports openvino (roadedge/core/telemetry.py)
