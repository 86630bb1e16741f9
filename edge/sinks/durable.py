"""What the durable sinks (mqtt, greengrass, s3) share: the bounded drain on close, and the outbox options.

A durable sink keeps what it has not handed over on disk (the SQLite outbox of
edge.outbox, or the s3 sink's spool folder) and sends it from a thread of its
own. On a clean stop its close() calls

    left = drain(pending, condition, timeout_s, clock=time.monotonic, stop_early=None)

which waits on the sink's threading.Condition until `pending()` is 0, the
`drain_timeout_s` seconds have passed, or `stop_early()` is true (the s3 sink:
S3 is unreachable, waiting longer is pointless), and returns what is left. What
is left is not dropped: it stays on disk for the next start, which sends it first.

The option vocabulary is the same in every durable sink: `drain_timeout_s`
(seconds close() waits), and for the outbox sinks `outbox` (a PATH; empty = a
file per sink and device under ~/.cache/roadedge), `outbox_max_mb` and
`outbox_max_age_s` (the outbox's bounds: beyond them the oldest messages are
dropped, counted). `outbox_options()` declares them, checks included.

No TYPE here: this module is not a plugin. Standard library and edge.* only
(Python 3.7: the DeepLens Lambda imports edge.sinks).
"""
import os
import re
import time

from edge.plugins import Option, above, at_least

POLL_S = 0.05  # the longest a drain sleeps between two looks at pending(), should a sender not notify


def drain(pending, condition, timeout_s, clock=time.monotonic, stop_early=None):
    """Wait until pending() is 0, `timeout_s` seconds (from now, by `clock`) have passed, or stop_early() is true;
    returns pending() at that moment. `condition` (the sink's threading.Condition) is held while pending() and
    stop_early() are called and waited on between two calls: a sender that notifies it ends the wait at once."""
    deadline = clock() + max(0.0, float(timeout_s))
    with condition:
        while True:
            left = pending()
            if not left or (stop_early is not None and stop_early()):
                return left
            remaining = deadline - clock()
            if remaining <= 0:
                return left
            condition.wait(min(remaining, POLL_S))


def drain_timeout_option(default, help_text):
    return Option(float, default, help_text, check=at_least(0, " s"))


def outbox_options(stem, drain_timeout_s):
    """The options of a sink with an outbox: `outbox` (a path; empty = ~/.cache/roadedge/<stem>-<device>.sqlite),
    `outbox_max_mb`, `outbox_max_age_s` and `drain_timeout_s` (its default given)."""
    return {
        "outbox": Option(str, "", "outbox SQLite file; empty = ~/.cache/roadedge/{}-<device>.sqlite".format(stem)),
        "outbox_max_mb": Option(float, 64.0, "outbox size bound; beyond it the oldest messages are dropped (counted)",
                                check=above(0)),
        "outbox_max_age_s": Option(float, 7 * 86400.0, "messages older than this are dropped (counted); 0 = no age "
                                   "bound", check=at_least(0, " s")),
        "drain_timeout_s": drain_timeout_option(drain_timeout_s, "on a clean stop, wait this long for the outbox to "
                                                "empty; the rest stays on disk for the next start"),
    }


def outbox_path(option, stem, device):
    """The outbox file: `option` (~ expanded), or ~/.cache/roadedge/<stem>-<device>.sqlite (device name sanitised)."""
    path = option or "~/.cache/roadedge/{}-{}.sqlite".format(stem, re.sub(r"[^A-Za-z0-9._-]", "_", device or "roadedge"))
    return os.path.expanduser(path)


def open_outbox(options, stem, device, log):
    """The sink's Outbox, with the bounds of its options; RoadedgeError naming the file when it cannot be opened."""
    from edge.outbox import Outbox  # sqlite3 loads with the first sink that keeps an outbox

    return Outbox(outbox_path(options["outbox"], stem, device), int(options["outbox_max_mb"] * 1048576),
                  options["outbox_max_age_s"], log)
