"""The loop's watchdog: a capture or an inference that does not return within `pipeline.watchdog_s` is logged,
counted, and its part reopened (the source reconnects, the backend loads and compiles again); the retained status
message says `stalled` meanwhile. After `pipeline.watchdog_restarts` stalls in a row without a frame done in
between, the run gives up with WatchdogExpired (exit code 3), so a supervisor (systemd's Restart=on-failure)
starts the process again.
"""
import collections
import logging

from roadedge.core.errors import RoadedgeError

log = logging.getLogger("roadedge.watchdog")


class WatchdogExpired(RoadedgeError):
    exit_code = 3


class Watchdog(object):
    def __init__(self, limit_s, max_in_row, log=log):
        self.limit_s, self.max_in_row, self.log = float(limit_s), int(max_in_row), log
        self.stalls = collections.Counter()  # part -> stalls since the start
        self.in_row = 0

    @property
    def enabled(self):
        return self.limit_s > 0

    def stalled(self, part, seconds):
        """Count a stall of `part` ('capture' or 'inference'); WatchdogExpired once too many came in a row."""
        self.stalls[part] += 1
        self.in_row += 1
        if self.in_row > self.max_in_row:
            raise WatchdogExpired("watchdog: the {} stalled {} times in a row (no result within {:g} s each time); "
                                  "giving up so the service can be restarted".format(part, self.in_row, self.limit_s))
        self.log.error("watchdog: the %s has not returned for %.1f s (limit %g s); reopening it (stall %d in a row, "
                       "%d of the %s so far)", part, seconds, self.limit_s, self.in_row, self.stalls[part], part)

    def frame_done(self):
        self.in_row = 0

    def stats(self):
        return {"capture": self.stalls["capture"], "inference": self.stalls["inference"]}
