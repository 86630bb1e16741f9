"""roadedge's cloud half: what runs off the vehicle (a SageMaker-compatible inference server, Kinesis Video frames
to masks in S3, the Lambda that decodes them). It uses the runtime's parts (backends, tasks, the KVS code) and is
used by the command line only."""
from roadedge.core.telemetry import quiet_openvino

quiet_openvino()  # before anything imports openvino (roadedge/core/telemetry.py)
