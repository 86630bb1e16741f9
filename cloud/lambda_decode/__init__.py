"""The decoding Lambda: S3 ObjectCreated events for class-index mask PNGs -> a `.decoded.json` beside each mask (class
shares, drivable share, free distance ahead, obstacles with their bearing). Handler: `cloud.lambda_decode.handler.handler`.

It runs in AWS Lambda's Python runtime from the zip `roadedge package lambda` builds: it imports only the standard
library, numpy, Pillow, boto3 (the runtime's) and the few pure project modules the zip carries (see
packagers/lambda_zip.py)."""
