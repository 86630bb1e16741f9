"""Model versions for the model update tests: the bundled detector's IR under another metadata `version`, a version
whose .bin is cut short, and a version that loads and passes the smoke test but whose inferences fail on real frames.
"""
import hashlib
import json
import os

import numpy as np

from edge.backends.openvino import BUNDLED_MODEL

NAME = "road-damage-ssd"


def bundled_files():
    stem = os.path.splitext(BUNDLED_MODEL)[0]
    with open(stem + ".xml", "rb") as xml, open(stem + ".bin", "rb") as weights, open(stem + ".json") as meta:
        return xml.read(), weights.read(), json.load(meta)


def version_files(version, weights_sha256=None, truncate=False):
    """{ext: bytes} of the bundled detector as `version`; `truncate`: the .bin cut in half (its sha256 matches the
    cut file: it is what was published); `weights_sha256`: a wrong sha256 in the metadata."""
    xml, weights, meta = bundled_files()
    if truncate:
        weights = weights[: len(weights) // 2]
    meta = dict(meta, version=version, sha256=weights_sha256 or hashlib.sha256(weights).hexdigest())
    return {".xml": xml, ".bin": weights, ".json": json.dumps(meta).encode("utf-8")}


def failing_files(version, folder):
    """A version that loads, compiles and decodes a black frame (no detections), but whose inference fails on any
    frame with a pixel above 0.5: its output is NonZero(max(image) > 0.5) reshaped to [1, 1, -1, 7], and 4 values
    do not make rows of 7. The bundled detector's metadata, so only the frames tell it apart."""
    import openvino as ov
    import openvino.opset13 as ops

    _, _, meta = bundled_files()
    data = ops.parameter([1, 3, 256, 256], ov.Type.f32, name="data")
    bright = ops.greater(ops.reduce_max(data, ops.constant(np.array([1, 2, 3], np.int64)), keep_dims=True),
                         ops.constant(np.float32(0.5)))
    rows = ops.reshape(ops.convert(ops.non_zero(bright, "i64"), ov.Type.f32),
                       ops.constant(np.array([1, 1, -1, 7], np.int64)), special_zero=False)
    model = ov.Model([rows], [data], "fails-on-real-frames")
    os.makedirs(folder, exist_ok=True)
    xml_path = os.path.join(folder, NAME + ".xml")
    ov.save_model(model, xml_path, compress_to_fp16=False)
    with open(xml_path, "rb") as xml, open(os.path.join(folder, NAME + ".bin"), "rb") as weights:
        xml_bytes, weights_bytes = xml.read(), weights.read()
    meta = dict(meta, version=version, sha256=hashlib.sha256(weights_bytes).hexdigest())
    return {".xml": xml_bytes, ".bin": weights_bytes, ".json": json.dumps(meta).encode("utf-8")}


def put_s3(s3, bucket, prefix, version, files):
    """One folder per version: prefix/<version>/NAME.*; the metadata last (what announces the version)."""
    for ext in (".xml", ".bin", ".json"):
        s3.put_object(Bucket=bucket, Key="{}/{}/{}{}".format(prefix, version, NAME, ext), Body=files[ext])


def put_folder(folder, files):
    """The flat layout: NAME.* directly in `folder`, replaced in place (the .bin first, the metadata last)."""
    for ext in (".bin", ".xml", ".json"):
        path = os.path.join(folder, NAME + ext)
        with open(path + ".tmp", "wb") as handle:
            handle.write(files[ext])
        os.replace(path + ".tmp", path)
