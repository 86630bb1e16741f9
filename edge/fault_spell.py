"""A storage fault that goes on (disk full, read-only, I/O error) told once, not once per write: a line when it
starts, at most one every `interval` seconds with the running count while it goes on, one when it is over.
Used by the MQTT outbox and the Kinesis Video fragment store; the caller logs the (level, format, args) notes."""
import logging
import time


def plural(n, unit):
    return "{} {}{}".format(n, unit, "" if n == 1 else "s")


class FaultSpell(object):
    def __init__(self, what, unit, goes_on, counter, interval=60.0, clock=time.monotonic):
        """what: 'outbox PATH'; unit: 'message'; goes_on: 'the pipeline goes on'; counter: the stats name."""
        self.what, self.unit, self.goes_on, self.counter = what, unit, goes_on, counter
        self.interval, self.clock = float(interval), clock
        self.name = self.since = self.at = None
        self.count = 0

    def failed(self, fault, n, err):
        """n items not stored because of `fault` -> the notes due."""
        now = self.clock()
        if self.name != fault:
            self.name, self.since, self.count, self.at = fault, now, n, now
            return [(logging.WARNING, "%s: %s, %s not stored (SQLite: %s); %s, further ones are counted (%s) and "
                     "logged at most every %.0f s", self.what, fault, plural(n, self.unit), err, self.goes_on,
                     self.counter, self.interval)]
        self.count += n
        if now - self.at < self.interval:
            return []
        self.at = now
        return [(logging.WARNING, "%s: %s, %s not stored in the last %.0f s", self.what, fault,
                 plural(self.count, self.unit), now - self.since)]

    def stored(self):
        """A write worked -> the note that the spell is over, once."""
        if self.name is None:
            return []
        name, seconds, count = self.name, self.clock() - self.since, self.count
        self.name = None
        return [(logging.INFO, "%s: storing %ss again (%s for %.1f s, %s not stored)", self.what, self.unit, name,
                 seconds, plural(count, self.unit))]
