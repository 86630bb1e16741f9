"""Stand-in for AWS DeepLens's `awscam` module, for tests off the device.

The API is the one AWS documents in the AWS DeepLens Developer Guide
(github.com/awsdocs/aws-deeplens-user-guide, doc_source/
deeplens-device-library-awscam-model-*.md) and that the DeepLens samples call:

    ok, frame = awscam.getLastFrame()              # the latest camera frame, BGR uint8 HxWx3
    model = awscam.Model(xml_path, {"GPU": 1})     # loading_config: {"GPU": 1} GPU, {"GPU": 0} CPU
    raw = model.doInference(frame)                 # frame already resized to the model input; {output: ndarray}
    model.parseResult("ssd", raw)                  # {"ssd": [{"label", "prob", "xmin", "ymin", "xmax", "ymax"}]}

parseResult's boxes are in model-input pixels, integers as in the guide's
sample output; labels are the IR's DetectionOutput labels as ints (the guide
prints them quoted, but AWS's object-detection sample looks them up in a map
with int keys). Like the device, the model really runs: doInference feeds the
IR to OpenVINO on the CPU, after turning the BGR frame into what the metadata
JSON beside the .xml describes (NCHW float32, colour order, (x - mean) *
scale; or the frame itself when the preprocessing is embedded in the IR).

Test hooks: set_video(path, loop), set_renderer(renderer, fps),
set_frames(images), fail_next(n) (the next n getLastFrame calls return
(False, None), as when the camera service restarts), reset(). `models` lists
every Model made; `frame_calls` counts getLastFrame calls.
"""
import json

import numpy as np

models = []
frame_calls = 0
_feed = None
_failures = 0


def reset():
    global _feed, _failures, frame_calls
    if _feed is not None:
        _feed.close()
    _feed, _failures, frame_calls = None, 0, 0
    del models[:]


class _Video(object):
    def __init__(self, path, loop):
        import cv2

        self.cv2, self.path, self.loop = cv2, path, loop
        self.capture = cv2.VideoCapture(path)

    def next(self):
        ok, image = self.capture.read()
        if not ok and self.loop:
            self.capture.release()
            self.capture = self.cv2.VideoCapture(self.path)
            ok, image = self.capture.read()
        return image if ok else None

    def close(self):
        self.capture.release()


class _Renderer(object):
    def __init__(self, renderer, fps):
        self.renderer, self.fps, self.index = renderer, fps, 0

    def next(self):
        image, _ = self.renderer.frame(self.index, self.fps)
        self.index += 1
        return image

    def close(self):
        pass


class _Frames(object):
    def __init__(self, images):
        self.images, self.index = list(images), 0

    def next(self):
        if self.index >= len(self.images):
            return None
        self.index += 1
        return self.images[self.index - 1]

    def close(self):
        pass


def set_video(path, loop=True):
    """getLastFrame serves the frames of a video file, in order."""
    _set(_Video(path, loop))


def set_renderer(renderer, fps=15.0):
    """getLastFrame serves renderer.frame(i, fps)[0] for i = 0, 1, ... (e.g. an edge.synth DriveRenderer)."""
    _set(_Renderer(renderer, fps))


def set_frames(images):
    """getLastFrame serves these images, then (False, None)."""
    _set(_Frames(images))


def _set(feed):
    global _feed
    if _feed is not None:
        _feed.close()
    _feed = feed


def fail_next(count):
    """The next `count` getLastFrame calls return (False, None)."""
    global _failures
    _failures = int(count)


def getLastFrame():  # noqa: N802 - awscam's name
    global _failures, frame_calls
    frame_calls += 1
    if _failures > 0:
        _failures -= 1
        return False, None
    image = _feed.next() if _feed is not None else None
    if image is None:
        return False, None
    return True, image


class Model(object):
    def __init__(self, model_path, loading_config):
        import openvino as ov

        if not isinstance(loading_config, dict) or loading_config.get("GPU") not in (0, 1):
            raise ValueError("loading_config must be {'GPU': 1} or {'GPU': 0}, got %r" % (loading_config,))
        self.model_path, self.loading_config = model_path, dict(loading_config)
        with open(model_path[:-4] + ".json", encoding="utf-8") as handle:
            self.metadata = json.load(handle)
        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(model_path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        self.input_size = (int(self.metadata["input"]["width"]), int(self.metadata["input"]["height"]))
        self.calls = 0
        models.append(self)

    def tensor(self, frame):
        """What the IR takes for a BGR frame of the input size (see the module docstring)."""
        pre = self.metadata["preprocessing"]
        if pre.get("embedded"):
            return np.ascontiguousarray(frame[None])
        pixels = frame[:, :, ::-1] if pre["color_order"] == "RGB" else frame
        pixels = (pixels.astype(np.float32) - np.asarray(pre["mean"], np.float32)) * np.float32(pre["scale"])
        return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None])

    def doInference(self, frame):  # noqa: N802 - awscam's name
        width, height = self.input_size
        if frame.shape[:2] != (height, width) or frame.dtype != np.uint8:
            raise ValueError("doInference: frame %s %s; the model takes %dx%d uint8 BGR" % (
                frame.shape, frame.dtype, width, height))
        self.calls += 1
        result = self.compiled(self.tensor(frame))
        return {output.get_any_name(): result[output] for output in self.compiled.outputs}

    def parseResult(self, model_type, raw):  # noqa: N802 - awscam's name
        if model_type != "ssd":
            raise ValueError("this stand-in parses 'ssd' results only, got %r" % (model_type,))
        width, height = self.input_size
        rows = np.asarray(next(iter(raw.values())), dtype=np.float64).reshape(-1, 7)
        end = np.flatnonzero(rows[:, 0] < 0)
        rows = rows[: end[0]] if len(end) else rows
        return {"ssd": [{"label": int(row[1]), "prob": float(row[2]),
                         "xmin": int(row[3] * width), "ymin": int(row[4] * height),
                         "xmax": int(row[5] * width), "ymax": int(row[6] * height)} for row in rows]}
