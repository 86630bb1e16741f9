"""Stand-in for the parts of awsiotsdk (AWS IoT Device SDK v2 for Python, package `awsiot`) roadedge uses.

Only the Greengrass v2 IPC client: awsiot/greengrasscoreipc/__init__.py
(connect), clientv2.py (GreengrassCoreIPCClientV2), model.py (QOS and the
error shapes) and eventstreamrpc.py (the connection errors), with the call
signatures of aws/aws-iot-device-sdk-python-v2. Test hooks live in
awsiot.greengrasscoreipc.
"""
