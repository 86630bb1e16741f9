"""`roadedge serve [MODEL]`: a SageMaker-compatible inference server (cloud/serve/http.py) for a detection or a
segmentation model. It listens at once (GET /ping answers 503 while the model compiles, then 200) and serves until
Ctrl-C or SIGTERM."""
import os
import sys
import threading

from roadedge.core.commands import lazy_handler


def register(subparsers):
    p = subparsers.add_parser(
        "serve", help="serve a model over HTTP as a SageMaker container does (/ping, /invocations)",
        description="Answer SageMaker's container protocol (GET /ping, POST /invocations) and the runtime API's path "
        "(POST /endpoints/NAME/invocations, so boto3's invoke_endpoint with endpoint_url works locally). Images in "
        "(image/jpeg, image/png, application/x-image); detection answers SageMaker object detection's JSON, "
        "segmentation a class-index PNG or JSON shares (by the Accept header).")
    p.add_argument("model", nargs="?", default="bundled", metavar="MODEL",
                   help="IR .xml, .onnx, model.tar.gz, an MXNet prefix, or a folder holding one (SageMaker's "
                   "/opt/ml/model); default: the bundled detector")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container; default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080, SageMaker's)")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="inferences at a time (default 0: OpenVINO's optimal number of requests for the hint)")
    p.add_argument("--queue", type=int, default=0, metavar="N",
                   help="requests waiting for a worker before more get 503 (default 0: 4 per worker)")
    p.add_argument("--hint", default="throughput", type=str.lower, choices=("throughput", "latency"),
                   help="OpenVINO performance hint (default throughput: many clients; latency: one at a time)")
    p.add_argument("--device", default="CPU", help="OpenVINO device (default CPU)")
    p.add_argument("--min-score", type=float, help="detection score threshold (default 0.5, as `roadedge run`)")
    p.add_argument("--input-size", nargs=2, type=int, metavar=("W", "H"), help="model input size for ONNX/MXNet models")
    p.add_argument("--max-bytes", type=int, default=6 * 1024 * 1024,
                   help="largest request body in bytes (default 6 MiB, SageMaker's real-time limit); larger: 413")
    p.add_argument("--max-pixels", type=int, default=40_000_000, help="largest image in pixels (default 40 M); larger: 413")
    p.add_argument("--max-connections", type=int, default=64, help="open connections at most (default 64); more: 503")
    p.add_argument("--verbose", action="store_true", help="log every request on stderr")
    p.set_defaults(handler=lazy_handler("cloud.serve.command", "serve_command"))


def _check(args):
    from roadedge.core.errors import RoadedgeError

    for name in ("workers", "queue"):
        if getattr(args, name) < 0:
            raise RoadedgeError("--{} {}: expected 0 or more".format(name, getattr(args, name)))
    for name in ("max_bytes", "max_pixels", "max_connections"):
        if getattr(args, name) < 1:
            raise RoadedgeError("--{} {}: expected 1 or more".format(name.replace("_", "-"), getattr(args, name)))
    if not 0 <= args.port <= 65535:
        raise RoadedgeError("--port {}: expected 0..65535".format(args.port))
    if args.min_score is not None and not 0.0 <= args.min_score <= 1.0:
        raise RoadedgeError("--min-score {}: expected 0..1".format(args.min_score))


def serve_command(args):
    from cloud.serve.http import ServeApp, make_server
    from cloud.serve.model import load_model

    _check(args)
    app = ServeApp(max_bytes=args.max_bytes, max_pixels=args.max_pixels, queue=args.queue)
    server = make_server(app, args.host, args.port, args.max_connections, args.verbose)
    host, port = server.server_address[:2]
    thread = threading.Thread(target=server.serve_forever, name="serve-http", daemon=True)
    thread.start()
    print("roadedge serve: listening on http://{}:{}/ (GET /ping: 503 until the model is loaded)".format(host, port),
          file=sys.stderr, flush=True)
    model = None
    try:
        model = load_model(args.model, hint=args.hint, workers=args.workers, device=args.device,
                           min_score=args.min_score, input_size=args.input_size)
        app.ready(model)
        print("roadedge serve: model {} ({}, {}) ready with {} workers on {}; POST /invocations".format(
            model.name, model.model.task, os.path.basename(model.backend.model_path), model.workers, args.device),
            file=sys.stderr, flush=True)
        while thread.is_alive():
            thread.join(0.5)
    finally:
        server.shutdown()
        server.server_close()
        if model is not None:
            model.close()
    return 0
