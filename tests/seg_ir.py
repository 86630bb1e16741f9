"""A small real segmentation IR for runtime tests: logits = a 1x1 convolution of the RGB input, so every pixel's class
is the argmax of a known linear function of its colour (computed independently in numpy by `expected_mask`)."""
import json
import os

import numpy as np

LABELS = ["background", "road", "lane_marking", "sky", "D40"]
# logits_k = W[k] . (r, g, b) + B[k], on raw 0-255 RGB (the metadata's mean 0, scale 1)
WEIGHTS = np.array([[0.0, 0.0, 0.0],      # background: the floor
                    [0.3, 0.3, 0.3],      # road: grey, bright enough
                    [1.0, 1.0, -0.5],     # lane marking: yellow/white
                    [-0.5, -0.2, 1.5],    # sky: blue
                    [1.5, -1.0, -1.0]],   # pothole: red
                   np.float32)
BIASES = np.array([10.0, 0.0, -120.0, -20.0, -30.0], np.float32)


def expected_mask(rgb):
    """(H, W, 3) RGB -> (H, W) class indices, the way the IR computes them (float32, argmax, first wins)."""
    logits = rgb.astype(np.float32) @ WEIGHTS.T + BIASES
    return logits.argmax(axis=2).astype(np.uint8)


def make_seg_ir(folder, size=(64, 48), argmax=False, name="colour-seg", palette=True):
    """Write NAME.xml/.bin/.json (roadedge.model/1, task segmentation) into `folder`; returns the .xml path."""
    import openvino as ov
    import openvino.opset13 as ops

    width, height = size
    data = ops.parameter([1, 3, height, width], ov.Type.f32, name="data")
    conv = ops.convolution(data, ops.constant(WEIGHTS.reshape(len(LABELS), 3, 1, 1)), [1, 1], [0, 0], [0, 0], [1, 1])
    logits = ops.add(conv, ops.constant(BIASES.reshape(1, -1, 1, 1)))
    output = logits
    if argmax:
        top = ops.topk(logits, ops.constant(np.int64(1)), 1, "max", "none", "i32")
        output = top.output(1)
    result = ops.result(output)
    result.output(0).get_tensor().set_names({"mask" if argmax else "logits"})
    os.makedirs(folder, exist_ok=True)
    xml = os.path.join(folder, name + ".xml")
    ov.save_model(ov.Model([result], [data], name), xml, compress_to_fp16=False)
    meta = {
        "schema": "roadedge.model/1", "name": name, "task": "segmentation", "labels": LABELS,
        "num_classes": len(LABELS),
        "input": {"name": "data", "height": height, "width": width, "shape": [1, 3, height, width], "layout": "NCHW",
                  "dtype": "float32", "color_order": "RGB"},
        "preprocessing": {"color_order": "RGB", "mean": [0.0, 0.0, 0.0], "scale": [1.0, 1.0, 1.0], "resize": "stretch",
                          "embedded": False},
        "output": {"name": "mask" if argmax else "logits",
                   "format": "segmentation_mask" if argmax else "segmentation_logits", "label_offset": 0},
    }
    if palette:
        meta["palette"] = [[0, 0, 0], [128, 64, 128], [255, 255, 0], [70, 130, 180], [220, 20, 60]]
    with open(os.path.join(folder, name + ".json"), "w", encoding="utf-8") as handle:
        json.dump(meta, handle)
    return xml


def scene(width, height, seed=0):
    """An RGB frame of large colour regions: sky on top, grey road below with a yellow line and a red patch."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.uint8)
    horizon = height // 3
    image[:horizon] = (60, 120, 220)
    image[horizon:] = (128, 128, 128)
    image[horizon:, width // 2 - 2:width // 2 + 2] = (250, 230, 40)
    top = int(rng.integers(horizon + 2, height - 8))
    left = int(rng.integers(0, width // 3))
    image[top:top + 6, left:left + 8] = (200, 30, 30)
    image[:4, :4] = (5, 5, 5)  # a background corner
    return image
