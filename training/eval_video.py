"""Ground truth from a rendered drive (`roadedge synth --video`): drive.mp4 + drive.jsonl, one JSON line per frame.

Each line is {frame, t, width, height, objects: [{name, bbox [x0, y0, x1, y1] px, truncated, difficult, track_id}]},
frames listed in order from 0. Every video frame is one image of the evaluation; frames are decoded with OpenCV
in order, once, while the detector asks for them (a 10 s 1280x720 drive would not fit in memory decoded).
"""
import json
import os

from roadedge.core.errors import RoadedgeError

VIDEO_NAME, LABELS_NAME = "drive.mp4", "drive.jsonl"  # as edge.synth.writer writes them


def drive_paths(data):
    """(video, labels) when DATA is a drive folder (it has drive.jsonl or drive.mp4) or a VIDEO.mp4 with VIDEO.jsonl
    beside it; None for anything else."""
    if os.path.isdir(data):
        video, labels = os.path.join(data, VIDEO_NAME), os.path.join(data, LABELS_NAME)
        if not (os.path.exists(video) or os.path.exists(labels)):
            return None
    elif data.lower().endswith(".mp4") and os.path.isfile(data):
        video, labels = data, os.path.splitext(data)[0] + ".jsonl"
    else:
        return None
    for path, what in ((video, "the video"), (labels, "its per-frame labels")):
        if not os.path.isfile(path):
            raise RoadedgeError("{}: not found ({}; a `roadedge synth --video` folder has {} and {})".format(
                path, what, VIDEO_NAME, LABELS_NAME))
    return video, labels


def read_labels(path):
    """[(width, height, [(name, box, difficult)])] per frame, from a drive.jsonl; one-line errors naming file:line."""
    frames = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = "{}:{}".format(path, number)
            try:
                record = json.loads(line)
                frame, width, height = record["frame"], int(record["width"]), int(record["height"])
                objects = [(str(o["name"]), [float(v) for v in o["bbox"]], bool(o.get("difficult", 0)))
                           for o in record["objects"]]
            except ValueError as err:
                raise RoadedgeError("{}: not a JSON object ({})".format(where, err)) from None
            except (KeyError, TypeError) as err:
                raise RoadedgeError("{}: expected frame, width, height and objects [{{name, bbox, difficult}}] ({}: {})".format(
                    where, type(err).__name__, err)) from None
            if frame != len(frames):
                raise RoadedgeError("{}: frame {}, expected {} (one line per frame, in order from 0)".format(
                    where, frame, len(frames)))
            for index, (_, box, _) in enumerate(objects):
                if len(box) != 4 or not (box[0] <= box[2] and box[1] <= box[3]):
                    raise RoadedgeError("{}: objects[{}].bbox {}: expected [x0, y0, x1, y1] with x0 <= x1, y0 <= y1".format(
                        where, index, box))
            frames.append((width, height, objects))
    if not frames:
        raise RoadedgeError("{}: no frames".format(path))
    return frames


class VideoFrames:
    """A video's frames decoded in order; a frame before the last one read re-opens the video."""

    def __init__(self, path, labels_path, labelled):
        self.path, self.labels_path, self.labelled = path, labels_path, labelled
        self.capture, self.next = None, 0

    def _open(self):
        import cv2

        if self.capture is not None:
            self.capture.release()
        self.capture, self.next = cv2.VideoCapture(self.path), 0
        if not self.capture.isOpened():
            raise RoadedgeError("{}: cannot open the video (expected an MPEG-4 file OpenCV can decode)".format(self.path))

    def count(self):
        """The container's frame count (0 when it does not say)."""
        import cv2

        self._open()
        return max(0, int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT)))

    def read(self, index, size):
        if self.capture is None or index < self.next:
            self._open()
        while self.next < index:
            if not self.capture.grab():
                break
            self.next += 1
        ok, frame = self.capture.read() if self.next == index else (False, None)
        if not ok:
            raise RoadedgeError("{}: frame {} cannot be decoded: the video ends before the {} frames {} labels".format(
                self.path, index, self.labelled, self.labels_path))
        self.next += 1
        if frame.shape[1::-1] != tuple(size):
            raise RoadedgeError("{}: frame {} is {}x{}, {} says {}x{}".format(
                self.path, index, frame.shape[1], frame.shape[0], self.labels_path, *size))
        return frame


def load_drive(paths, limit=None, every=1, image_type=None):
    """The frames to evaluate (every `every`-th from 0, at most `limit`), as image_type(stem, path, objects, reader)."""
    video, labels_path = paths
    labels = read_labels(labels_path)
    frames = VideoFrames(video, labels_path, len(labels))
    count = frames.count()
    if count and count != len(labels):
        raise RoadedgeError("{}: {} frames, but {} labels {} (expected one line per video frame)".format(
            video, count, labels_path, len(labels)))
    picked = list(range(0, len(labels), every))[:limit]
    images = []
    for index in picked:
        width, height, objects = labels[index]
        images.append(image_type("frame-{:05d}".format(index), "{}#{}".format(video, index), objects,
                                 lambda index=index, size=(width, height): frames.read(index, size)))
    return images
