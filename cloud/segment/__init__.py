"""`roadedge cloud segment`: Kinesis Video GetMedia -> every Nth frame decoded and segmented -> masks and figures in S3.

getmedia (the GetMedia client) -> mkv (its MKV reader, pure) -> decode (PyAV) -> segmenters (a local IR or a SageMaker
endpoint) -> output (S3 keys, the roadedge.cloud.mask/1 JSON, the checkpoint); consumer ties them, command is the CLI.
"""
