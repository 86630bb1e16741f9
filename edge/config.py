"""Runtime configuration: a device profile (device_profiles/NAME.yaml), an optional --config FILE on top,
then command-line overrides. Every layer is checked against the plugin OPTIONS before anything opens:
an unknown key, a wrong type or a missing model file is one line naming the file and the key.

A configuration is a plain dict:

    device_name: str                   # in messages and topics; "" = the host name
    source:   {type: opencv, ...}      # edge/sources/<type>.py OPTIONS
    backend:  {type: openvino, ...}    # edge/backends/<type>.py OPTIONS
    detection: {...}                   # DETECTION below
    segmentation: {...}                # a task's own section (edge/tasks/<task>.py SECTION, OPTIONS)
    pipeline: {...}                    # PIPELINE below
    gps: {...}, camera: {...}          # GPS, CAMERA below: positions and places on the road
    outputs:  [{type: jsonl, ...}, ...]  # edge/sinks/<type>.py OPTIONS (with GPS, a `defects` output is added when
                                       # there is none: the registry in its default place)
"""
import copy
import os
import socket

from edge import plugins
from edge.plugins import (
    Check,
    Option,
    above,
    at_least,
    between,
    check_value,
    kind_of,
    list_of,
    mapping_of_scores,
    with_defaults,
)
from roadedge.core.errors import RoadedgeError, os_reason

PROFILES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "device_profiles")
DEFAULT_PROFILE = "x86-openvino-cpu"
MAX_SETTINGS_BYTES = 1 << 20

DETECTION = {
    "min_score": Option(float, 0.5, "global score threshold", check=between(0.0, 1.0)),
    "class_thresholds": Option(dict, {}, "per-class thresholds by class code, e.g. {D44: 0.6}", check=mapping_of_scores()),
    "top_k": Option(int, 100, "at most this many detections per frame (0: no limit)", check=at_least(0)),
    "resize": Option(str, "stretch", "stretch (what SageMaker's SSD trains on) or letterbox",
                     choices=("stretch", "letterbox")),
}
PIPELINE = {
    "frames": Option(int, 0, "stop after this many frames (0: run until the source ends)", check=at_least(0)),
    "queue": Option(int, 4, "frames buffered between capture and inference", check=at_least(1)),
    "drop_frames": Option(str, "auto", "auto (drop the oldest for live sources only), always, or never",
                          choices=("auto", "always", "never")),
    "publish_empty": Option(bool, False, "also emit a detections message for frames with no detections"),
    "stats_interval": Option(float, 10.0, "seconds between stats snapshots (log and `stats` messages)"),
    "watchdog_s": Option(float, 10.0, "a capture or inference that has not returned after this many seconds is "
                         "reopened (0: no watchdog)", check=at_least(0)),
    "watchdog_restarts": Option(int, 3, "after this many stalls in a row the run exits with code 3 (for systemd to "
                                "restart it)", check=at_least(0)),
}
EVENTS = {
    "enabled": Option(bool, True, "turn detections into damage events (new / update / end) with an IoU tracker"),
    "iou": Option(float, 0.3, "overlap that continues a track"),
    "max_age_s": Option(float, 1.0, "a track unseen this long ends"),
    "min_hits": Option(int, 2, "detections before a track becomes an event"),
    "update_interval_s": Option(float, 5.0, "at most one update event per track this often, when its best score rises"),
}
MODEL_UPDATES = {  # edge.models_update: used when backend.model is s3://bucket/prefix/ or a folder of versions
    "interval_s": Option(float, 60.0, "seconds between two looks at the source for a new model version",
                         check=above(0)),
    "failures_before_rollback": Option(int, 3, "a new version is rolled back when this many of its first frames fail "
                                       "in a row; as many frames through end its probation", check=at_least(1)),
    "state_dir": Option(str, "", "where the versions are kept (current and previous); empty = "
                        "~/.cache/roadedge/models-DEVICE"),
    "endpoint_url": Option(str, "", "S3 endpoint (tests, MinIO, VPC endpoints); empty = AWS"),
    "region": Option(str, "", "the bucket's region; empty = the AWS configuration's"),
    "shadow": Option(bool, False, "follow the AWS IoT device shadow's desired model_version and thresholds and report "
                     "back (through the mqtt output's connection)"),
    "thing_name": Option(str, "", "the AWS IoT thing of the shadow; empty = the mqtt output's client id"),
    "shadow_name": Option(str, "roadedge", "the named shadow"),
}


def _gps_spec(value):
    from edge.gps.sources import parse_spec

    try:
        return value == "" or bool(parse_spec(value))
    except RoadedgeError:
        return False


GPS = {  # edge.gps: the vehicle's position on every message, the detections' places on the road
    "source": Option(str, "", "gpsd://HOST:PORT, nmea:DEVICE[:BAUD], file:PATH (an NMEA log or GPX track) or synthetic; "
                     "empty: no GPS", check=Check(_gps_spec, "empty, gpsd://HOST:PORT, nmea:DEVICE[:BAUD], file:PATH "
                                                  "or synthetic")),
    "max_age_s": Option(float, 2.0, "a fix older than this is marked stale and places nothing", check=above(0)),
    "offset_s": Option(float, 0.0, "a recorded video with a file or synthetic track: seconds into the track of the "
                       "video's first frame"),
    "start": Option(list, [52.5163, 13.3777], "synthetic: where the drive starts (latitude, longitude)",
                    check=list_of(float, 2)),
    "heading": Option(float, 90.0, "synthetic: the drive's heading, degrees clockwise from north", check=between(0, 360)),
    "speed": Option(float, 12.0, "synthetic: the drive's speed in m/s (roadedge synth --video drives at 12)",
                    check=at_least(0)),
}
CAMERA = {  # how the camera is mounted: what projects a box onto the road (edge.processing.geotag)
    "height_m": Option(float, 1.3, "the camera's height above the road in metres", check=above(0)),
    "pitch_deg": Option(float, 8.0, "how far the camera looks down from the horizontal, degrees", check=between(-30, 89)),
    "hfov_deg": Option(float, 62.2, "horizontal field of view in degrees (Raspberry Pi Camera Module 2: 62.2)",
                       check=between(1, 170)),
    "max_range_m": Option(float, 20.0, "a detection farther ahead than this is not placed: near the horizon a pixel "
                          "spans metres of road, and a tenth of a degree of pitch moves a place 35 m ahead by a metre",
                          check=above(0)),
}


def task_sections():
    """{section: OPTIONS} of the tasks that bring their own settings (edge/tasks/<task>.py SECTION and OPTIONS)."""
    from edge.tasks import tasks

    return {module.SECTION: module.OPTIONS for module in tasks().values() if getattr(module, "OPTIONS", None)}


TOP = {
    "description": Option(str, "", "what the profile is for"),
    "device_name": Option(str, "", "device name in messages and topics (default: the host name)"),
    "source": Option(dict, {}, "frame source section"),
    "backend": Option(dict, {}, "inference backend section"),
    "detection": Option(dict, {}, "thresholds and top-k"),
    "pipeline": Option(dict, {}, "loop settings"),
    "events": Option(dict, {}, "damage events from the tracker"),
    "model_updates": Option(dict, {}, "new model versions from backend.model's S3 prefix or folder"),
    "gps": Option(dict, {}, "where the vehicle is: the GPS source"),
    "camera": Option(dict, {}, "how the camera is mounted (height, pitch, field of view)"),
    "outputs": Option(list, [], "sink sections"),
}
TOP.update((section, Option(dict, {}, "settings of the {} task".format(section))) for section in task_sections())


def profile_names():
    return sorted(name[:-5] for name in os.listdir(PROFILES_DIR) if name.endswith(".yaml"))


def profile_path(name):
    path = os.path.join(PROFILES_DIR, name + ".yaml")
    if not os.path.isfile(path):
        raise RoadedgeError("--profile {}: no such profile; expected one of {}".format(name, ", ".join(profile_names())))
    return path


def detect_profile():
    """The profile for the machine this runs on: a DeepLens, a Raspberry Pi 4/5, else x86-openvino-cpu."""
    if os.path.isdir("/opt/awscam") or os.path.exists("/etc/awscam"):
        return "deeplens"
    try:
        with open("/proc/device-tree/model", "rb") as handle:
            model = handle.read().decode("ascii", "replace")
    except OSError:
        model = ""
    if "Raspberry Pi 5" in model:
        return "rpi5"
    if "Raspberry Pi" in model:
        return "rpi4"
    return DEFAULT_PROFILE


def read_yaml(path):
    """A YAML mapping from `path`; one-line errors for a missing file, bad YAML or a non-mapping (edge.config_yaml)."""
    from edge.config_yaml import parse_settings

    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SETTINGS_BYTES + 1)
    except OSError as err:
        raise RoadedgeError("{}: cannot read ({})".format(path, os_reason(err))) from None
    data = parse_settings(path, data)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RoadedgeError("{}: expected a mapping of settings at the top, got {}".format(path, kind_of(data)))
    return data


def merge(base, layer):
    """Deep merge: mappings merge key by key, everything else (lists too) is replaced. A plugin section that
    names another `type` replaces the section instead: a file source's options mean nothing to a camera."""
    result = copy.deepcopy(base)
    for key, value in layer.items():
        replaced = isinstance(value, dict) and "type" in value and value["type"] != (result.get(key) or {}).get("type")
        if isinstance(value, dict) and isinstance(result.get(key), dict) and key != "class_thresholds" and not replaced:
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _check_section(origin, where, section, options, kind=None):
    for key, value in section.items():
        if key == "type" and kind:
            continue
        if key not in options:
            raise RoadedgeError("{}: {}.{}: unknown key; expected one of {}".format(
                origin, where, key, ", ".join(sorted(options) + (["type"] if kind else []))))
        check_value("{}: {}.{}".format(origin, where, key), value, options[key])


def _plugin_options(origin, kind, where, type_name):
    known = plugins.plugins(kind)
    if type_name not in known:
        raise RoadedgeError("{}: {}.type: {!r}; expected one of {}".format(origin, where, type_name,
                                                                         ", ".join(sorted(known))))
    return known[type_name].OPTIONS


def check_top(origin, layer):
    """The layer's top-level keys and their types, before it is merged with the layers under it."""
    for key, value in layer.items():
        if key not in TOP:
            raise RoadedgeError("{}: {}: unknown key; expected one of {}".format(origin, key, ", ".join(sorted(TOP))))
        check_value("{}: {}".format(origin, key), value, TOP[key])


def check_layer(origin, layer, merged):
    """Check one layer's sections; plugin sections against the type the merged configuration selects."""
    check_top(origin, layer)
    for kind in ("source", "backend"):
        if kind in layer:
            type_name = merged.get(kind, {}).get("type")
            if not type_name:
                raise RoadedgeError("{}: {}.type: missing; expected one of {}".format(
                    origin, kind, ", ".join(sorted(plugins.plugins(kind)))))
            _check_section(origin, kind, layer[kind], _plugin_options(origin, kind, kind, type_name), kind)
    for key, options in [("detection", DETECTION), ("pipeline", PIPELINE), ("events", EVENTS),
                         ("model_updates", MODEL_UPDATES), ("gps", GPS), ("camera", CAMERA)] + sorted(
            task_sections().items()):
        if key in layer:
            _check_section(origin, key, layer[key], options)
    for index, sink in enumerate(layer.get("outputs", [])):
        where = "outputs[{}]".format(index)
        if not isinstance(sink, dict) or not sink.get("type"):
            raise RoadedgeError("{}: {}: expected a mapping with a type (one of {})".format(
                origin, where, ", ".join(sorted(plugins.plugins("sink")))))
        _check_section(origin, where, sink, _plugin_options(origin, "sink", where + ".type", sink["type"]), "sink")


def load(profile=None, config_file=None, overrides=None):
    """The validated configuration with every default filled in, plus where it came from (`origin`).

    `overrides`: the command-line layer, or a function of the files' merged settings that returns it (flags
    such as --output edit the outputs list the profile and the config file give).
    """
    name = profile or detect_profile()
    layers = [("device_profiles/{}.yaml".format(name), read_yaml(profile_path(name)))]
    if config_file:
        layers.append((config_file, read_yaml(config_file)))
    merged = {}
    for origin, layer in layers:  # each layer is checked against the plugin types in force once it applies
        check_top(origin, layer)
        merged = merge(merged, layer)
        check_layer(origin, layer, merged)
    if callable(overrides):
        overrides = overrides(copy.deepcopy(merged))
    if overrides:
        layers.append(("command line", overrides))
        check_top("command line", overrides)
        merged = merge(merged, overrides)
        check_layer("command line", overrides, merged)
    origin = " + ".join(o for o, _ in layers)
    for kind in ("source", "backend"):
        if not merged.get(kind, {}).get("type"):
            raise RoadedgeError("{}: {}.type: missing".format(origin, kind))
    config = {"profile": name, "origin": origin,
              "device_name": merged.get("device_name") or socket.gethostname().split(".")[0] or "roadedge",
              "description": merged.get("description", ""),
              "source": with_defaults(plugins.plugin("source", merged["source"]["type"]).OPTIONS, merged["source"]),
              "backend": with_defaults(plugins.plugin("backend", merged["backend"]["type"]).OPTIONS, merged["backend"]),
              "detection": with_defaults(DETECTION, merged.get("detection", {})),
              "pipeline": with_defaults(PIPELINE, merged.get("pipeline", {})),
              "events": with_defaults(EVENTS, merged.get("events", {})),
              "model_updates": with_defaults(MODEL_UPDATES, merged.get("model_updates", {})),
              "gps": with_defaults(GPS, merged.get("gps", {})),
              "camera": with_defaults(CAMERA, merged.get("camera", {})),
              **{section: with_defaults(options, merged.get(section, {})) for section, options in task_sections().items()},
              "outputs": [with_defaults(plugins.plugin("sink", s["type"]).OPTIONS, s) for s in merged.get("outputs", [])]}
    for key in ("source", "backend"):
        config[key]["type"] = merged[key]["type"]
    for sink, section in zip(config["outputs"], merged.get("outputs", [])):
        sink["type"] = section["type"]
    if config["gps"]["source"] and not any(sink["type"] == "defects" for sink in config["outputs"]):
        config["outputs"].append(dict(with_defaults(plugins.plugin("sink", "defects").OPTIONS, {}), type="defects"))
    _check_files(origin, config)
    return config


def _check_files(origin, config):
    model = config["backend"].get("model")
    if model and model != "bundled" and not model.startswith("s3://"):
        path = os.path.expanduser(model)
        if os.path.isdir(path):  # a folder of model versions (edge.models_update)
            return
        candidates = (path, path + "-symbol.json")
        if not any(os.path.isfile(p) for p in candidates):
            raise RoadedgeError("{}: backend.model: {}: no such file; expected an IR .xml, .onnx, an MXNet prefix or "
                                "model.tar.gz".format(origin, model))
