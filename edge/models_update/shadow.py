"""The AWS IoT device shadow of the fleet's desired model: named shadow `roadedge` (model_updates.shadow_name).

Topics (AWS IoT Core's reserved shadow topics, through the mqtt sink's own connection):

    $aws/things/THING/shadow/name/roadedge/get             we publish {} at start and on every reconnection
    $aws/things/THING/shadow/name/roadedge/get/accepted    the whole document: state.desired is what to run
    $aws/things/THING/shadow/name/roadedge/update/delta    {"state": {desired that differs from reported},
                                                            "version": n, "timestamp": t}: what changed
    $aws/things/THING/shadow/name/roadedge/update          we publish {"state": {"reported": {...}}}

Desired keys read: `model_version` (text or number; null: back to the newest version published) and `thresholds`
({min_score, class_thresholds} of the detection task, applied between two frames). Reported: model_name,
model_version, model_sha256, thresholds, and model_update ({event, version, reason} of the last update).
"""
import json
import logging

from edge.plugins import Option, between, check_value, mapping_of_scores
from roadedge.core.errors import RoadedgeError

log = logging.getLogger("roadedge.models")
THRESHOLDS = {"min_score": Option(float, 0.5, "global score threshold", check=between(0.0, 1.0)),
              "class_thresholds": Option(dict, {}, "per-class thresholds", check=mapping_of_scores())}


def topics(thing, shadow):
    base = "$aws/things/{}/shadow/name/{}".format(thing, shadow)
    return {"get": base + "/get", "get_accepted": base + "/get/accepted", "update": base + "/update",
            "delta": base + "/update/delta"}


def checked_thresholds(value):
    """The desired thresholds, checked like the profile's detection section; RoadedgeError naming the field."""
    if not isinstance(value, dict):
        raise RoadedgeError("shadow: thresholds: expected an object with min_score and/or class_thresholds")
    for key, item in value.items():
        if key not in THRESHOLDS:
            raise RoadedgeError("shadow: thresholds.{}: unknown key; expected min_score or class_thresholds".format(key))
        if key == "min_score" and isinstance(item, int) and not isinstance(item, bool):
            item = float(item)
        check_value("shadow: thresholds." + key, item, THRESHOLDS[key])
    return {key: float(v) if key == "min_score" else dict(v) for key, v in value.items()}


class Shadow(object):
    """`on_desired(state)` gets each desired state (a dict with model_version and/or thresholds) on paho's thread."""

    def __init__(self, sink, thing, shadow, on_desired):
        self.sink, self.topics, self.on_desired = sink, topics(thing, shadow), on_desired
        self.last_version = None  # the shadow document's version of the last delta handled: older ones are stale

    def start(self):
        self.sink.subscribe(self.topics["delta"], self._message)
        self.sink.subscribe(self.topics["get_accepted"], self._message)
        self.sink.connect_hooks.append(self.ask)
        self.ask()

    def ask(self):
        """The whole document, once subscribed: at start and after every reconnection (deltas sent meanwhile are lost)."""
        self.sink.send(self.topics["get"], {})

    def _message(self, topic, payload):
        try:
            document = json.loads(payload.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            log.warning("shadow: %s: not JSON (%s); ignored", topic, err)
            return
        state = document.get("state") if isinstance(document, dict) else None
        if not isinstance(state, dict):
            log.warning("shadow: %s: no state object; ignored", topic)
            return
        version = document.get("version")
        if isinstance(version, int) and self.last_version is not None and version < self.last_version:
            return  # an older document than one already handled (QoS 1 may deliver again)
        if isinstance(version, int):
            self.last_version = version
        if topic == self.topics["get_accepted"]:
            state = state.get("desired") or {}
        desired = {key: state[key] for key in ("model_version", "thresholds") if key in state}
        if desired:
            self.on_desired(desired)

    def report(self, reported):
        self.sink.send(self.topics["update"], {"state": {"reported": reported}})
