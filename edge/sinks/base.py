"""The sink contract: what every sink gets from the pipeline and what it gives back.

A sink plugin is one file in edge/sinks/ defining `TYPE`, `OPTIONS` and
`open(options, context) -> Sink`. A Sink has:

    TYPE          its plugin type: its counters go under this name in the stats message
    needs_image   True if it uses the annotated frame (preview, FIFO, recording); the
                  pipeline annotates only when some sink needs it
    write(result) called once per frame, in order, from the pipeline thread. Must not
                  block for long: a sink with slow I/O hands the work to its own thread
                  (durable ones keep it on disk first, edge/sinks/durable.py) or drops.
                  An exception is logged by the pipeline, counted, and the other sinks
                  still get the frame.
    stats()       its counters for the stats message and Prometheus, or None
    image_key(boot_id, track_id)   where it keeps a damage track's best frame (the S3
                  sink's object key, carried in events), or None
    publish_status(message)   the runtime's state changed (the watchdog); MQTT publishes it
                  retained on its status topic
    close()       flush and release; called once at the end, also after errors.
"""
from roadedge.core.errors import RoadedgeError


def require_folder(path, where):
    """The folder a sink writes `path` into must exist: a typo in a path must not create folders anywhere (the
    runtime often runs as root). RoadedgeError naming the sink, the path and the folder otherwise."""
    import os

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise RoadedgeError("{}: {}: folder {} does not exist (create it, or choose another path)".format(
            where, path, folder))


class Sink(object):
    """Defaults for the optional parts of the contract; subclasses set TYPE and write `write`."""

    TYPE = None
    needs_image = False

    def write(self, result):
        raise NotImplementedError

    def stats(self):
        return None

    def image_key(self, boot_id, track_id):
        return None

    def publish_status(self, message):
        """A roadedge.status/1 message when the runtime's state changes (the watchdog: stalled, online again);
        sinks with a status topic publish it, retained."""

    def close(self):
        """Nothing to release by default."""


class FrameResult(object):
    """One processed frame: what sinks see.

    frame        edge.sources.base.Frame (the original BGR image)
    detections   list of edge.processing.decoders.Detection, boxes normalised to the frame ([] for a task
                 without boxes)
    output       what the model's task decoded: the detections, or an edge.processing.segmentation
                 SegmentationResult (its `mask` at the frame's size)
    message      the frame's v1 message (dict; detections or segmentation, edge.messages), or None
    annotated    BGR image with boxes, legend and FPS drawn, or None when no sink needs it
    timings      {stage: milliseconds} for this frame
    events       damage-event messages (roadedge.events/1: new / update / end) the tracker made on this frame
    stats        a roadedge.stats/1 message when one is due (every pipeline.stats_interval seconds), else None
    best_tracks  ids of the tracks whose best frame is this one (the s3 sink keeps its JPEG)
    final        True for the one closing result at a clean end: no new frame, only the ended tracks' events
                 and the last stats (its frame is the last frame again)
    position     the vehicle's fix at this frame (edge.gps.sources position dict) when the run has GPS, else None
    """

    __slots__ = ("frame", "detections", "output", "message", "annotated", "timings", "events", "stats", "best_tracks",
                 "final", "position", "_jpeg")

    def __init__(self, frame, detections, message, annotated=None, timings=None, events=None, stats=None, output=None):
        self.frame, self.detections, self.message = frame, detections, message
        self.output = detections if output is None else output
        self.annotated, self.timings = annotated, dict(timings or {})
        self.events, self.stats = list(events or []), stats
        self.best_tracks = []
        self.final = False
        self.position = None
        self._jpeg = None

    def jpeg(self, quality=80):
        """The annotated frame (or the raw one) as JPEG bytes, encoded once and shared by the sinks."""
        if self._jpeg is None:
            import cv2

            image = self.annotated if self.annotated is not None else self.frame.image
            ok, data = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
            if not ok:
                raise ValueError("JPEG encoding failed")
            self._jpeg = data.tobytes()
        return self._jpeg
