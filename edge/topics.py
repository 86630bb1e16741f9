"""MQTT topic names for the v1 messages, checked against AWS IoT Core's rules before anything connects.

Every publishing sink (mqtt, greengrass) builds its topics as `<prefix>/<kind>`
with `kind` one of KINDS, from a configured prefix such as the default
`roadedge/{device}` (`{device}` is replaced by the device name) or DeepLens's
classic `$aws/things/<thing>/infer`.

AWS IoT Core's limits for a topic name in a PUBLISH
(docs.aws.amazon.com/general/latest/gr/iot-core.html, "Message broker and
protocol limits and quotas"): at most 256 bytes of UTF-8 and at most 7 forward
slashes; a topic name may not contain the wildcards `+` and `#` or the NUL
character (MQTT 3.1.1, 4.7.1). The checks apply to the longest topic a prefix
makes, so a prefix that passes works for every kind.
"""
from roadedge.core.errors import RoadedgeError

KINDS = ("detections", "segmentation", "events", "stats", "status")
MAX_TOPIC_BYTES = 256
MAX_SLASHES = 7
DEFAULT_PREFIX = "roadedge/{device}"


def validate_topic_prefix(prefix, device, where="topic_prefix"):
    """The prefix with `{device}` filled in; RoadedgeError naming `where` and the broken rule otherwise."""
    if not isinstance(prefix, str) or not prefix.strip():
        raise RoadedgeError("{}: empty; expected a topic prefix such as {}".format(where, DEFAULT_PREFIX))
    if "{device}" in prefix and not device:
        raise RoadedgeError("{}: {!r} uses {{device}} but the device name is empty".format(where, prefix))
    expanded = prefix.replace("{device}", device or "")
    try:
        expanded.encode("utf-8")
    except UnicodeEncodeError as err:
        raise RoadedgeError("{}: {!r}: not valid UTF-8 text (character {!r} at {})".format(
            where, expanded, expanded[err.start], err.start)) from None
    for char, what in (("+", "the wildcard '+'"), ("#", "the wildcard '#'"), ("\0", "a NUL character")):
        if char in expanded:
            raise RoadedgeError("{}: {!r} contains {} (not allowed in a topic name)".format(where, expanded, what))
    if "{" in expanded or "}" in expanded:
        raise RoadedgeError("{}: {!r}: only {{device}} can be filled in".format(where, prefix))
    if expanded.startswith("/") or expanded.endswith("/") or "//" in expanded:
        raise RoadedgeError("{}: {!r} has an empty topic level (leading, trailing or double '/')".format(
            where, expanded))
    longest = topic(expanded, max(KINDS, key=len))
    if longest.count("/") > MAX_SLASHES:
        raise RoadedgeError("{}: {!r} has {} levels; AWS IoT allows at most {} slashes in a topic, so a prefix "
                            "can have at most {} levels".format(where, expanded, expanded.count("/") + 1,
                                                                 MAX_SLASHES, MAX_SLASHES))
    size = len(longest.encode("utf-8"))
    if size > MAX_TOPIC_BYTES:
        raise RoadedgeError("{}: {!r} makes {}-byte topics such as {!r}; AWS IoT allows at most {} bytes".format(
            where, expanded, size, longest, MAX_TOPIC_BYTES))
    return expanded


def topic(prefix, kind):
    """`roadedge/rc-car-1` + `events` -> `roadedge/rc-car-1/events`."""
    return "{}/{}".format(prefix, kind)
