"""Per-frame detections -> damage events: a small greedy IoU tracker, so one pothole is one event, not 30 a second.

    tracker = IouTracker()
    events = tracker.update(detections, frame_index, timestamp)   # every processed frame, also with no detections
    tracker.best_changed                                           # ids whose best frame is this frame (keep its JPEG)
    events += tracker.flush(timestamp)                             # at the clean end of a run

Matching is per class code (`Detection.label`): a detection joins the open
track of its class whose box overlaps it most (IoU with the track's last box,
or with that box moved on by the track's recent motion, whichever is larger),
greedily from the best pair down, if that IoU is at least `iou`. Boxes are
normalised xyxy in the frame. Unmatched detections start tentative tracks.

A track's life, as events (plain dicts, see `event()`):

- `new`     when it has been matched `min_hits` times (so a one-frame false
            positive never becomes an event);
- `update`  at most every `update_interval_s` seconds, and only when its best
            score has improved since the last event about it (a few per track);
- `end`     when it has not been matched for more than `max_age_s` seconds (or
            for `max_missed` processed frames in a row, if given), and for every
            confirmed track on `flush()`. Tentative tracks end silently.

Ages use the timestamps passed in, never the frame count alone, so the
behaviour is the same at 5 or 30 FPS. Track ids are ints counting from 1 per
tracker (per boot): unique, not contiguous (tentative tracks use ids too).
"""
from __future__ import division

EVENT_TYPES = ("new", "update", "end")


def iou(a, b):
    """Intersection over union of two xyxy boxes (0 when either is empty)."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class Track(object):
    __slots__ = ("track_id", "label", "box", "velocity", "score", "best_score", "best_box", "best_frame",
                 "first_seen", "last_seen", "first_frame", "last_frame", "hits", "missed", "confirmed",
                 "reported_at", "reported_score", "ground")

    def __init__(self, track_id, label, box, score, frame_index, timestamp, ground=None):
        self.track_id, self.label = track_id, label
        self.ground = ground
        self.box, self.velocity, self.score = box, (0.0, 0.0, 0.0, 0.0), score
        self.best_score, self.best_box, self.best_frame = score, box, frame_index
        self.first_seen = self.last_seen = timestamp
        self.first_frame = self.last_frame = frame_index
        self.hits, self.missed, self.confirmed = 1, 0, False
        self.reported_at, self.reported_score = None, None

    def predicted(self, timestamp):
        """The last box moved on by the recent motion (per second) to `timestamp`."""
        dt = max(0.0, timestamp - self.last_seen)
        return tuple(v + d * dt for v, d in zip(self.box, self.velocity))

    def add(self, box, score, frame_index, timestamp, ground=None):
        """Record a match; True if this frame became the track's best."""
        dt = timestamp - self.last_seen
        if dt > 0:
            step = tuple((new - old) / dt for new, old in zip(box, self.box))
            self.velocity = tuple(0.5 * v + 0.5 * s for v, s in zip(self.velocity, step))
        self.box, self.score = box, score
        self.last_seen, self.last_frame = timestamp, frame_index
        self.hits += 1
        self.missed = 0
        if ground is not None and (self.ground is None or ground["range_m"] <= self.ground["range_m"]):
            self.ground = ground  # the nearest place is the most precise one
        if score > self.best_score:
            self.best_score, self.best_box, self.best_frame = score, box, frame_index
            return True
        return False


def event(kind, track):
    """The event dict of `track` (plain values): type, track_id, label, score/box/best_frame of its best
    detection, first_seen/last_seen (timestamps of its first and last match), first_frame/last_frame, hits, and
    `ground`: of its detections' places on the road, the one seen from nearest (the most precise), or None."""
    return {"type": kind, "track_id": track.track_id, "label": track.label,
            "score": float(track.best_score), "box": [float(v) for v in track.best_box],
            "best_frame": int(track.best_frame), "first_seen": float(track.first_seen),
            "last_seen": float(track.last_seen), "first_frame": int(track.first_frame),
            "last_frame": int(track.last_frame), "hits": int(track.hits), "ground": track.ground}


class IouTracker(object):
    def __init__(self, iou=0.3, max_age_s=1.0, max_missed=None, min_hits=2, update_interval_s=5.0,
                 min_improvement=0.01):
        """`iou`: least overlap for a detection to continue a track; `max_age_s`: seconds a track may go
        unmatched before it ends; `max_missed`: also end it after this many unmatched frames (None: time only);
        `min_hits`: matches before `new`; `update_interval_s`: least seconds between events about a track;
        `min_improvement`: how much the best score must grow for an `update`."""
        if not 0.0 < float(iou) <= 1.0:
            raise ValueError("iou must be in (0, 1], got {!r}".format(iou))
        if int(min_hits) < 1:
            raise ValueError("min_hits must be at least 1, got {!r}".format(min_hits))
        self.iou, self.max_age_s, self.max_missed = float(iou), float(max_age_s), max_missed
        self.min_hits, self.update_interval_s = int(min_hits), float(update_interval_s)
        self.min_improvement = float(min_improvement)
        self.tracks = []
        self.next_id = 1
        self.best_changed = []
        self.best_frames = {}

    def update(self, detections, frame_index, timestamp):
        """One processed frame's detections (edge.processing.decoders.Detection, boxes normalised to the frame)
        -> the events it causes: `end` of tracks gone stale, `new`/`update` of matched ones, then `end` of
        tracks past `max_missed`.

        Afterwards `best_changed` lists the ids of the tracks (tentative ones too) whose best frame is now
        this frame, and `best_frames` maps every open track's id to its best frame index."""
        timestamp = float(timestamp)
        events = self._expire(timestamp)
        self.best_changed = []
        matched, unmatched = self._match(detections, timestamp)
        for track, det in matched:
            box = tuple(float(v) for v in det.box)
            if track.add(box, float(det.score), frame_index, timestamp, det.ground):
                self.best_changed.append(track.track_id)
            events.extend(self._report(track, timestamp))
        for det in unmatched:
            track = Track(self.next_id, det.label, tuple(float(v) for v in det.box), float(det.score), frame_index,
                          timestamp, det.ground)
            self.next_id += 1
            self.tracks.append(track)
            self.best_changed.append(track.track_id)
            events.extend(self._report(track, timestamp))
        seen = set(t.track_id for t, _ in matched)
        seen.update(self.best_changed)  # the tracks this frame started
        events.extend(self._miss(seen))
        self.best_frames = dict((t.track_id, t.best_frame) for t in self.tracks)
        return events

    def flush(self, timestamp=None):
        """End every open track (call at the clean end of a run): `end` events for the confirmed ones."""
        events = [event("end", t) for t in self.tracks if t.confirmed]
        self.tracks = []
        self.best_changed, self.best_frames = [], {}
        return events

    def open_tracks(self):
        """(track_id, label, confirmed) of the tracks still open."""
        return [(t.track_id, t.label, t.confirmed) for t in self.tracks]

    def _expire(self, timestamp):
        """End the tracks unmatched for more than max_age_s (before matching, so they cannot come back)."""
        return self._end([t for t in self.tracks if timestamp - t.last_seen > self.max_age_s])

    def _miss(self, seen):
        """Count a missed frame for the tracks this frame did not match; end those past max_missed."""
        gone = []
        for track in self.tracks:
            if track.track_id not in seen:
                track.missed += 1
                if self.max_missed is not None and track.missed >= int(self.max_missed):
                    gone.append(track)
        return self._end(gone)

    def _end(self, gone):
        if not gone:
            return []
        ids = set(t.track_id for t in gone)
        self.tracks = [t for t in self.tracks if t.track_id not in ids]
        return [event("end", t) for t in gone if t.confirmed]

    def _match(self, detections, timestamp):
        """Greedy matching per label: the highest-IoU (track, detection) pairs first."""
        pairs = []
        for d_index, det in enumerate(detections):
            box = tuple(float(v) for v in det.box)
            for t_index, track in enumerate(self.tracks):
                if track.label != det.label:
                    continue
                overlap = max(iou(track.box, box), iou(track.predicted(timestamp), box))
                if overlap >= self.iou:
                    pairs.append((-overlap, -float(det.score), t_index, d_index))
        pairs.sort()
        used_tracks, used_dets, matched = set(), set(), []
        for _, _, t_index, d_index in pairs:
            if t_index in used_tracks or d_index in used_dets:
                continue
            used_tracks.add(t_index)
            used_dets.add(d_index)
            matched.append((self.tracks[t_index], detections[d_index]))
        unmatched = [det for index, det in enumerate(detections) if index not in used_dets]
        return matched, unmatched

    def _report(self, track, timestamp):
        if not track.confirmed:
            if track.hits < self.min_hits:
                return []
            track.confirmed = True
            track.reported_at, track.reported_score = timestamp, track.best_score
            return [event("new", track)]
        if (timestamp - track.reported_at >= self.update_interval_s
                and track.best_score >= track.reported_score + self.min_improvement):
            track.reported_at, track.reported_score = timestamp, track.best_score
            return [event("update", track)]
        return []
