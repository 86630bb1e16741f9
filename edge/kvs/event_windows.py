"""Events mode: which fragments a stream sends when only the seconds around damage events matter (a crew on a
metered cellular link). A fragment is sent when it overlaps [event start - pre_roll, event end + post_roll] of
some event; it is skipped once no event can still want it (it ended more than pre_roll before the newest frame);
until then it waits in the store, which is where the pre-roll comes from. Pure: times are stream milliseconds."""

SEND, SKIP, WAIT = "send", "skip", "wait"


class EventWindows(object):
    def __init__(self, pre_roll_s, post_roll_s):
        self.pre, self.post = int(pre_roll_s * 1000), int(post_roll_s * 1000)
        self.windows = []  # [start_ms, end_ms or None while the event is open]
        self.open = {}  # track id -> its window
        self.latest = None  # the newest frame's time
        self.finished = False

    def seen(self, at_ms):
        self.latest = at_ms if self.latest is None else max(self.latest, at_ms)

    def event(self, kind, track_id, at_ms):
        """A damage event (roadedge.events/1 `event`: new, update, end) of a track at `at_ms`."""
        self.seen(at_ms)
        window = self.open.get(track_id)
        if window is None and kind != "end":
            window = self.open[track_id] = [at_ms, None]
            self.windows.append(window)
        elif window is not None and kind == "end":
            window[1] = at_ms
            del self.open[track_id]

    def finish(self):
        """The stream ends: open events end now, and nothing new can come."""
        for window in self.open.values():
            window[1] = self.latest
        self.open.clear()
        self.finished = True

    def decide(self, first_ms, last_ms):
        for start, end in self.windows:
            if last_ms >= start - self.pre and (end is None or first_ms <= end + self.post):
                return SEND
        if not self.finished and (self.latest is None or last_ms >= self.latest - self.pre):
            return WAIT  # an event starting now would still want it (pre-roll)
        if not self.finished and any(end is None for _, end in self.windows):
            return WAIT
        return SKIP
