"""`roadedge run` (the main job), `roadedge profiles` and `roadedge info`."""
import json
import logging
import os
import signal
import sys

from roadedge.core.commands import lazy_handler

OUTPUT_KINDS = ("jsonl", "record", "fifo", "masks")  # the sinks whose one setting is a path


def register(subparsers):
    p = subparsers.add_parser(
        "run", help="run the detector: source -> model -> JSON lines, preview, recordings",
        description="Run the inference loop. With no options: the device's profile (x86-openvino-cpu here), the "
        "bundled demo model and the bundled sample drive video; one JSON line per frame with detections on stdout and "
        "an annotated preview on http://127.0.0.1:8080/. Ctrl-C or SIGTERM stops it with a summary.")
    p.add_argument("--profile", help="device profile (see `roadedge profiles`; default: detected, else x86-openvino-cpu)")
    p.add_argument("--config", metavar="FILE", help="YAML settings on top of the profile")
    p.add_argument("--source", help="video file, image folder, camera index, URL, gst:PIPELINE, synthetic[:SEED], "
                   "awscam, picamera2, or 'sample' (the bundled drive)")
    p.add_argument("--model", help="IR .xml, .onnx, MXNet prefix or model.tar.gz (default: the bundled demo model)")
    p.add_argument("--input-size", nargs=2, type=int, metavar=("W", "H"), help="model input size for ONNX/MXNet models")
    p.add_argument("--device", dest="ov_device", metavar="DEVICE", help="OpenVINO device: CPU, GPU, NPU, AUTO")
    p.add_argument("--requests", type=int, help="asynchronous infer requests in flight")
    p.add_argument("--frames", type=int, help="stop after N frames")
    p.add_argument("--loop", action="store_true", help="restart a video file or image folder at its end")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--realtime", dest="realtime", action="store_const", const=True,
                      help="play a video file at its own frame rate (the x86 profile does, for the preview)")
    pace.add_argument("--no-realtime", dest="realtime", action="store_const", const=False,
                      help="read a video file as fast as inference goes (benchmarks)")
    p.add_argument("--max-fps", type=float, help="read the source no faster than this")
    p.add_argument("--min-score", type=float, help="detection score threshold")
    p.add_argument("--device-name", help="device name in messages (default: the host name)")
    preview = p.add_mutually_exclusive_group()
    preview.add_argument("--preview", metavar="HOST:PORT", help="serve the annotated preview here (default 127.0.0.1:8080)")
    preview.add_argument("--no-preview", action="store_true", help="no HTTP preview")
    p.add_argument("--output", action="append", default=[], metavar="KIND:PATH",
                   help="jsonl:PATH (replaces stdout; jsonl:- is stdout), record:PATH.mp4, fifo:PATH, masks:DIR (one class-index "
                   "PNG per frame, segmentation models); repeatable")
    mqtt = p.add_argument_group("MQTT (AWS IoT Core, Greengrass, any broker), through an on-disk outbox")
    mqtt.add_argument("--mqtt", metavar="URL", help="publish to mqtt://HOST[:PORT] (1883) or mqtts://HOST[:PORT] (8883; "
                      "443 with --mqtt-alpn); adds or replaces the profile's mqtt output")
    mqtt.add_argument("--mqtt-cert", metavar="PEM", help="client certificate (AWS IoT: the thing's certificate)")
    mqtt.add_argument("--mqtt-key", metavar="PEM", help="the client certificate's private key")
    mqtt.add_argument("--mqtt-ca", metavar="PEM", help="CA to trust for the broker (default: the system's CAs)")
    mqtt.add_argument("--mqtt-alpn", action="store_true", help="ALPN x-amzn-mqtt-ca: MQTT over TLS on port 443 (AWS IoT)")
    mqtt.add_argument("--mqtt-prefix", metavar="TOPIC", help="topic prefix (default roadedge/{device})")
    mqtt.add_argument("--mqtt-client-id", metavar="ID", help="client id, the AWS IoT thing name (default: device name)")
    mqtt.add_argument("--outbox", metavar="PATH", help="outbox SQLite file (default ~/.cache/roadedge/outbox-DEVICE.sqlite)")
    mqtt.add_argument("--drain-timeout", type=float, metavar="S", help="on a clean stop, wait up to S seconds for the "
                      "outbox to drain (default 10)")
    kvs = p.add_argument_group("Kinesis Video Streams (the kvs output; credentials from the AWS chain)")
    kvs.add_argument("--kvs", metavar="STREAM", help="stream the camera to this Kinesis Video stream (created if missing)")
    kvs.add_argument("--kvs-region", metavar="REGION", help="its AWS region")
    kvs.add_argument("--kvs-endpoint-url", metavar="URL", help="control-plane endpoint (tests, VPC endpoints)")
    p.add_argument("--gps", metavar="SPEC", help="where the vehicle is: gpsd://HOST:PORT, nmea:/dev/ttyUSB0[:BAUD], "
                   "file:PATH (NMEA log or GPX, aligned to a video by its time) or synthetic; every message then carries "
                   "the position and each detection its estimated place on the road (profile: `gps:` and `camera:`)")
    p.add_argument("--defects", metavar="PATH", help="the defect registry (SQLite) the damage events with a place on the "
                   "road go to: one defect per class and place across passes (default with GPS: "
                   "~/.cache/roadedge/defects-DEVICE.sqlite; see `roadedge report`)")
    p.add_argument("--summary", metavar="FILE", help="also write the end-of-run summary as JSON to FILE")
    p.add_argument("--quiet", action="store_true", help="no log lines on stderr, only errors")
    p.set_defaults(handler=lazy_handler("edge.run_command", "run_command"))
    p = subparsers.add_parser("profiles", help="list the device profiles",
                              description="List the device profiles in device_profiles/ and which one is detected here.")
    p.set_defaults(handler=lazy_handler("edge.run_command", "profiles_command"))
    p = subparsers.add_parser("info", help="versions and the inference devices OpenVINO sees",
                              description="Print roadedge, Python, OpenVINO, OpenCV and numpy versions, the detected "
                              "profile and OpenVINO's devices.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=lazy_handler("edge.run_command", "info_command"))


def _host_port(text):
    from roadedge.core.errors import RoadedgeError

    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise RoadedgeError("--preview {}: expected HOST:PORT, e.g. 127.0.0.1:8080".format(text))
    if host.startswith("[") and host.endswith("]"):  # [::1]:8080: an IPv6 address binds without its brackets
        host = host[1:-1]
    return host or "127.0.0.1", int(port)


MQTT_FLAGS = (("mqtt_cert", "cert"), ("mqtt_key", "key"), ("mqtt_ca", "ca"), ("mqtt_prefix", "topic_prefix"),
              ("mqtt_client_id", "client_id"), ("outbox", "outbox"), ("drain_timeout", "drain_timeout_s"))


def mqtt_url(text, alpn=False):
    """--mqtt mqtt://HOST[:PORT] | mqtts://HOST[:PORT] -> {host, port, tls}; RoadedgeError naming the URL."""
    from urllib.parse import urlsplit

    from roadedge.core.errors import RoadedgeError

    expected = "--mqtt {}: expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]".format(text)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise RoadedgeError(expected + " (bad port)") from None
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or parts.path not in ("", "/") or parts.query \
            or parts.fragment or parts.username is not None:
        raise RoadedgeError(expected)
    tls = parts.scheme == "mqtts"
    if port is None:
        port = (443 if alpn else 8883) if tls else 1883
    if not 0 < port < 65536:
        raise RoadedgeError(expected + " (port {} out of range)".format(port))
    return {"host": parts.hostname, "port": port, "tls": tls}


def _mqtt_outputs(args, outputs):
    """The outputs with the --mqtt* flags applied: one mqtt entry added, or the profile's updated."""
    from roadedge.core.errors import RoadedgeError

    url, alpn = getattr(args, "mqtt", None), getattr(args, "mqtt_alpn", False)
    flags = {key: getattr(args, attr) for attr, key in MQTT_FLAGS if getattr(args, attr, None) is not None}
    if alpn:
        flags["alpn"] = True
    existing = [o for o in outputs if o.get("type") == "mqtt"]
    if not url and not flags:
        return None
    if not url and not existing:
        raise RoadedgeError("--mqtt-* and --outbox/--drain-timeout need --mqtt URL (or an mqtt output in the profile)")
    entry = dict(existing[0]) if existing else {"type": "mqtt"}
    if url:
        entry.update(mqtt_url(url, alpn))
        entry.setdefault("require_connection_s", 0.0)  # a broker that is down at start: store and forward
    entry.update(flags)
    return [o for o in outputs if o.get("type") != "mqtt"] + [entry]


def overrides_from_args(args, base_outputs):
    """The command-line layer of the configuration."""
    from edge.sources.spec import source_section
    from roadedge.core.errors import RoadedgeError

    layer = {}
    if args.source:
        layer["source"] = source_section(args.source)
    for flag, key, value in (("loop", "loop", True), ("max_fps", "max_fps", args.max_fps)):
        if getattr(args, flag):
            layer.setdefault("source", {})[key] = value
    if args.realtime is not None:
        layer.setdefault("source", {})["realtime"] = args.realtime
    backend = {}
    for attribute, key in (("model", "model"), ("ov_device", "device"), ("requests", "requests")):
        if getattr(args, attribute) is not None:
            backend[key] = getattr(args, attribute)
    if args.input_size:
        backend["input_size"] = list(args.input_size)
    if backend:
        layer["backend"] = backend
    if args.frames is not None:
        layer["pipeline"] = {"frames": args.frames}
    if args.min_score is not None:
        layer["detection"] = {"min_score": args.min_score}
    if args.device_name:
        layer["device_name"] = args.device_name
    if getattr(args, "gps", None):
        from edge.gps.sources import parse_spec

        parse_spec(args.gps)  # a bad spec is one line naming --gps
        layer["gps"] = {"source": args.gps}
    outputs = [dict(o) for o in base_outputs]
    if args.no_preview:
        outputs = [o for o in outputs if o.get("type") != "mjpeg"]
    elif args.preview:
        host, port = _host_port(args.preview)
        kept = next((o for o in outputs if o.get("type") == "mjpeg"), {})  # the profile's token, quality, max_fps
        outputs = [o for o in outputs if o.get("type") != "mjpeg"] + [dict(kept, type="mjpeg", host=host, port=port)]
    replaced = set()
    for spec in args.output:
        kind, sep, path = spec.partition(":")
        if not sep or kind not in OUTPUT_KINDS or not path:
            raise RoadedgeError("--output {}: expected KIND:PATH with KIND one of {}".format(spec, ", ".join(OUTPUT_KINDS)))
        if kind not in replaced:
            outputs = [o for o in outputs if o.get("type") != kind]
            replaced.add(kind)
        outputs.append({"type": kind, "path": path})
    with_mqtt = _mqtt_outputs(args, outputs)
    if with_mqtt is not None:
        outputs = with_mqtt
    if getattr(args, "defects", None):
        outputs = [o for o in outputs if o.get("type") != "defects"] + [{"type": "defects", "path": args.defects}]
    with_kvs = _kvs_outputs(args, outputs)
    if with_kvs is not None:
        outputs = with_kvs
    if args.no_preview or args.preview or args.output or with_mqtt is not None or with_kvs is not None \
            or getattr(args, "defects", None):
        layer["outputs"] = outputs
    return layer


def _kvs_outputs(args, outputs):
    """The outputs with --kvs STREAM (and its region, endpoint) applied: one kvs entry added or the profile's
    updated; None without --kvs flags."""
    from roadedge.core.errors import RoadedgeError

    flags = {key: getattr(args, attr) for attr, key in (("kvs", "stream_name"), ("kvs_region", "region"),
                                                         ("kvs_endpoint_url", "endpoint_url"))
             if getattr(args, attr, None)}
    if not flags:
        return None
    existing = [o for o in outputs if o.get("type") == "kvs"]
    if "stream_name" not in flags and not existing:
        raise RoadedgeError("--kvs-region/--kvs-endpoint-url need --kvs STREAM (or a kvs output in the profile)")
    entry = dict(existing[0]) if existing else {"type": "kvs"}
    entry.update(flags)
    return [o for o in outputs if o.get("type") != "kvs"] + [entry]


def load_config(args):
    from edge import config as config_module

    return config_module.load(args.profile, args.config,
                              lambda files: overrides_from_args(args, files.get("outputs", [])))


def format_summary(summary):
    stages = ", ".join("{} {:.1f}".format(stage, values["mean"]) for stage, values in summary["stages_ms"].items())
    not_inferred = summary.get("not_inferred")
    return ("{frames} frames in {seconds:.1f} s, {fps:.1f} FPS; {messages} messages, {detections} detections, "
            "{dropped} dropped frames".format(**summary)
            + (", {} not inferred".format(not_inferred) if not_inferred else "") + "; mean ms per frame: " + (stages or "-")
            + ("; sink errors: {}".format(summary["sink_errors"]) if summary["sink_errors"] else ""))


def run_command(args):
    from edge import app
    from roadedge.core.errors import file_error
    from roadedge.core.fsutil import atomic_file, check_writable_folder

    if args.summary:  # a read-only or full folder fails now, not after the whole run
        check_writable_folder(os.path.dirname(os.path.abspath(args.summary)), args.summary)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.INFO, format="roadedge: %(message)s",
                        stream=sys.stderr)
    config = load_config(args)
    log = logging.getLogger("roadedge")
    runtime = app.build(config)
    stops = []

    def stop(signum, frame):
        stops.append(signum)
        if len(stops) > 1:  # a second Ctrl-C: stop now, without draining
            raise KeyboardInterrupt()
        log.info("stopping (%s)", signal.Signals(signum).name)
        runtime.pipeline.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        preview = [s for s in runtime.sinks if hasattr(s, "address")]
        log.info("profile %s, model %s (%s), source %s%s", config["profile"], runtime.backend.model.name,
                 config["backend"]["type"], config["source"]["type"],
                 "".join(", preview http://{}:{}/".format(*s.address) for s in preview))
        summary = runtime.pipeline.run()
        if runtime.notifier is not None:  # a clean stop: systemd waits while the outboxes drain
            runtime.notifier.stopping("stopping: {} frames done, draining the outboxes".format(summary["frames"]))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        runtime.close()
    summary["profile"], summary["model"] = config["profile"], runtime.pipeline.model.name
    if not args.quiet:
        print("roadedge: " + format_summary(summary), file=sys.stderr)
    if args.summary:
        try:
            with atomic_file(args.summary, "w") as handle:
                json.dump(summary, handle, indent=2)
        except OSError as err:  # full or read-only by now: one line naming the file, and no half-written summary
            raise file_error(args.summary, err, "write") from None
    return 0


def profiles_command(args):
    from edge import config as config_module

    detected = config_module.detect_profile()
    for name in config_module.profile_names():
        data = config_module.read_yaml(config_module.profile_path(name))
        print("{:<18} {}{}".format(name, data.get("description", ""), "  (detected)" if name == detected else ""))
    return 0


def info_command(args):
    import platform

    import cv2
    import numpy

    from edge import config as config_module
    from roadedge import __version__

    info = {"roadedge": __version__, "python": platform.python_version(), "platform": platform.platform(),
            "numpy": numpy.__version__, "opencv": cv2.__version__, "profile": config_module.detect_profile()}
    try:
        from roadedge.core.openvino_core import import_openvino, shared_core

        ov = import_openvino()
        core = shared_core()
        info["openvino"] = ov.get_version()
        info["devices"] = {d: core.get_property(d, "FULL_DEVICE_NAME") for d in core.available_devices}
    except ImportError:
        info["openvino"], info["devices"] = None, {}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key in ("roadedge", "python", "platform", "numpy", "opencv", "openvino", "profile"):
        print("{:<10} {}".format(key, info[key] if info[key] is not None else "not installed"))
    for name, full in info["devices"].items():
        print("{:<10} {}: {}".format("device", name, full))
    return 0
