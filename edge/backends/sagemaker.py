"""Inference on a SageMaker endpoint: frames go out as JPEG through the SageMaker runtime's InvokeEndpoint (boto3
`sagemaker-runtime`), a few at a time so the network's latency overlaps; the answers come back as SageMaker's
object-detection JSON (`{"prediction": [[class, score, xmin, ymin, xmax, ymax], ...]}`, normalised) or, for
segmentation, as a class-index PNG.

The endpoint says nothing about its model, so its metadata comes from a roadedge.model/1 JSON (`metadata`: the one
`roadedge convert` wrote beside the IR the endpoint serves), or else the bundled model's for the task; `labels`
overrides its labels.

An endpoint out of reach (no connection, a timeout, 5xx, throttling) costs frames, not the run: each such frame is
FrameNotInferred (the loop counts it and goes on), and for `retry_s` after a failure frames are not sent at all (a
dead endpoint would otherwise hold every frame for the whole timeout). `endpoint_url` points boto3 at another server
speaking the same protocol (`roadedge serve`).
"""
import json
import os
import threading
import time

from edge.backends.base import Backend, FrameNotInferred, InferenceStalled
from edge.plugins import Option, above, at_least, between, list_of
from roadedge.core.errors import RoadedgeError
from roadedge.core.model_metadata import ModelInfo, read_metadata

TYPE = "sagemaker"
MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models")
BUNDLED_METADATA = {"detection": os.path.join(MODELS, "road-damage-ssd.json"),
                    "segmentation": os.path.join(MODELS, "road-seg.json")}
ANSWERS = {"detection": ("application/json", "sagemaker_json"), "segmentation": ("image/png", "segmentation_mask")}
CONTENT_TYPES = ("image/jpeg", "image/png", "application/x-image")

OPTIONS = {
    "endpoint": Option(str, "", "SageMaker endpoint name (required)"),
    "region": Option(str, "", "AWS region of the endpoint (default: AWS_REGION / AWS_DEFAULT_REGION / the AWS config)"),
    "endpoint_url": Option(str, "", "another server speaking the SageMaker runtime API, e.g. http://127.0.0.1:8080 "
                           "(roadedge serve)"),
    "task": Option(str, "detection", "what the endpoint's model does", choices=("detection", "segmentation")),
    "metadata": Option(str, "", "roadedge.model/1 JSON of the endpoint's model (default: the bundled model's for the task)"),
    "labels": Option(list, [], "class names in class-id order (overrides the metadata's)", check=list_of(str)),
    "content_type": Option(str, "image/jpeg", "how frames are sent", choices=CONTENT_TYPES),
    "jpeg_quality": Option(int, 90, "JPEG quality of the frames sent", check=between(1, 100)),
    "upload_size": Option(list, [], "[width, height] to resize frames to before sending ([]: as they are)",
                          check=list_of(int, 2, low=1)),
    "requests": Option(int, 4, "requests in flight (hides the network's latency)", check=between(1, 64)),
    "timeout_s": Option(float, 5.0, "seconds to wait for an answer", check=above(0)),
    "connect_timeout_s": Option(float, 2.0, "seconds to wait for a connection", check=above(0)),
    "retry_s": Option(float, 5.0, "after a failed request, seconds during which frames are not sent (dropped, counted)",
                      check=at_least(0)),
}


def model_info(options):
    """ModelInfo for the endpoint's model: its metadata JSON (or the bundled model's for the task), labels overridden."""
    path = os.path.expanduser(options["metadata"]) if options["metadata"] else BUNDLED_METADATA[options["task"]]
    if options["metadata"] and not os.path.isfile(path):
        raise RoadedgeError("backend.metadata {}: no such file; expected the roadedge.model/1 JSON of the endpoint's "
                            "model".format(path))
    metadata = dict(read_metadata(path, path))
    task = metadata.get("task", "detection")
    if task != options["task"]:
        raise RoadedgeError("backend.metadata {}: a {} model, but backend.task is {}".format(path, task, options["task"]))
    if options["labels"]:
        metadata["labels"] = list(options["labels"])
    if not options["metadata"]:  # the bundled model's labels and input, but not its name: the endpoint's model is its own
        metadata["name"] = options["endpoint"]
    output_format = ANSWERS[task][1]
    metadata["output"] = dict(metadata.get("output") or {}, format=output_format, label_offset=0)
    return ModelInfo.from_metadata(metadata, name=options["endpoint"], output_format=output_format, where=path)


class SageMakerBackend(Backend):
    """submit(image) -> a future of the endpoint's parsed answer; collect(future) -> (answer, round-trip ms)."""

    def __init__(self, client, options, model, clock=time.monotonic):
        from concurrent.futures import ThreadPoolExecutor

        self.client, self.options, self.model, self.clock = client, options, model, clock
        self.requests = int(options["requests"])
        self.accept = ANSWERS[model.task][0]
        self.pool = ThreadPoolExecutor(max_workers=self.requests, thread_name_prefix="roadedge-sagemaker")
        self.lock = threading.Lock()
        self.counters = {"sent": 0, "answered": 0, "failed": 0, "not_sent": 0}
        self.retry_at, self.last_error = None, None

    def submit(self, image):
        from concurrent.futures import Future

        with self.lock:
            backing_off = self.retry_at is not None and self.clock() < self.retry_at
            if backing_off:
                self.counters["not_sent"] += 1
            else:
                self.counters["sent"] += 1
        if backing_off:
            future = Future()
            future.set_exception(FrameNotInferred("endpoint {}: not sent, retrying {:.1f} s after: {}".format(
                self.options["endpoint"], self.options["retry_s"], self.last_error)))
            return future
        return self.pool.submit(self._invoke, image)

    def collect(self, future, timeout_s=None):
        from concurrent.futures import TimeoutError as FutureTimeout

        try:
            return future.result(timeout_s)
        except FutureTimeout:
            raise InferenceStalled("the endpoint did not answer within {:g} s".format(timeout_s)) from None

    def _encode(self, image):
        import cv2

        if self.options["upload_size"]:
            image = cv2.resize(image, tuple(self.options["upload_size"]), interpolation=cv2.INTER_AREA)
        if self.options["content_type"] == "image/png":
            ok, data = cv2.imencode(".png", image)
        else:
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(self.options["jpeg_quality"])])
        if not ok:
            raise FrameNotInferred("could not encode the frame as {}".format(self.options["content_type"]))
        return data.tobytes()

    def _invoke(self, image):
        started = time.perf_counter()
        body = self._encode(image)
        try:
            response = self.client.invoke_endpoint(EndpointName=self.options["endpoint"], Body=body,
                                                   ContentType=self.options["content_type"], Accept=self.accept)
            answer = response["Body"].read()
            raw = self._parse(answer, response.get("ContentType", ""))
        except Exception as err:  # botocore's connection, timeout and service errors; a bad answer
            reason = _reason(err)
            with self.lock:
                self.counters["failed"] += 1
                self.last_error = reason
                if self.options["retry_s"]:
                    self.retry_at = self.clock() + float(self.options["retry_s"])
            raise FrameNotInferred("endpoint {}: {}".format(self.options["endpoint"], reason)) from None
        with self.lock:
            self.counters["answered"] += 1
            self.retry_at = None
        return raw, (time.perf_counter() - started) * 1000.0

    def _parse(self, answer, content_type):
        if self.model.task == "detection":
            try:
                parsed = json.loads(answer.decode("utf-8"))
            except ValueError:
                raise ValueError("the answer ({}, {} bytes) is not JSON".format(content_type or "no type", len(answer))) from None
            if not isinstance(parsed, dict) or not isinstance(parsed.get("prediction"), list):
                raise ValueError("the answer has no 'prediction' list; expected SageMaker object detection's JSON")
            return parsed
        from roadedge.core.seglabels import decode_index_png

        try:
            return decode_index_png(answer)
        except ValueError as err:
            raise ValueError("the answer ({}, {} bytes): {}".format(content_type or "no type", len(answer), err)) from None

    def stats(self):
        with self.lock:
            return dict(self.counters)

    def close(self):
        self.pool.shutdown(wait=True)


def _reason(err):
    """One line for a failed call: botocore's error code and message, or the exception's text."""
    response = getattr(err, "response", None)
    if isinstance(response, dict) and response.get("Error"):
        error = response["Error"]
        return "{} ({})".format(error.get("Code") or type(err).__name__, " ".join(str(error.get("Message", "")).split()))
    return " ".join(str(err).split()) or type(err).__name__


def client_for(options):
    """A sagemaker-runtime client with the backend's timeouts and no retries (a frame is worth one try)."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=float(options["connect_timeout_s"]), read_timeout=float(options["timeout_s"]),
                    retries={"total_max_attempts": 1}, max_pool_connections=max(10, int(options["requests"])))
    session = boto3.session.Session()
    region = options["region"] or session.region_name
    if not region:
        raise RoadedgeError("backend.region: no AWS region set (nor AWS_REGION / AWS_DEFAULT_REGION); expected the "
                            "endpoint's region, e.g. us-east-1")
    return session.client("sagemaker-runtime", region_name=region, endpoint_url=options["endpoint_url"] or None,
                          config=config)


def open(options, context=None):  # noqa: A001 - the plugin entry point's name
    if not options["endpoint"]:
        raise RoadedgeError("backend.endpoint: missing; expected the SageMaker endpoint's name")
    try:
        import boto3  # noqa: F401 - only to say what is missing
    except ImportError:
        raise RoadedgeError("backend sagemaker: boto3 is not installed (pip install boto3)") from None
    return SageMakerBackend(client_for(options), options, model_info(options))
