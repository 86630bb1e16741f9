"""A model whose DetectionOutput keeps the background at label 0 (labels = class index + 1, as some Model Optimizer
and DeepLens optimizer versions write it) and says `output.label_offset: 1` in its metadata must report the same
classes as the bundled model: the loop's one filter is built from the backend's model metadata."""
import json
import os
import shutil
import xml.etree.ElementTree as ET

from edge.backends.openvino import BUNDLED_MODEL
from roadedge.cli import main
from roadedge.core.model_metadata import ir_label_offset

FRAMES = 150  # the whole sample drive


def offset_one_copy(folder):
    """The bundled IR with decrease_label_id="false" and label_offset 1 in its metadata."""
    xml = os.path.join(folder, "offset-one.xml")
    tree = ET.parse(BUNDLED_MODEL)
    layers = [layer for layer in tree.getroot().iter("layer") if layer.get("type") == "DetectionOutput"]
    assert len(layers) == 1 and layers[0].find("data").get("decrease_label_id") == "true"
    layers[0].find("data").set("decrease_label_id", "false")
    tree.write(xml)
    shutil.copyfile(BUNDLED_MODEL[:-4] + ".bin", xml[:-4] + ".bin")
    with open(BUNDLED_MODEL[:-4] + ".json", encoding="utf-8") as handle:
        metadata = json.load(handle)
    assert metadata["output"]["label_offset"] == 0
    metadata["output"]["label_offset"] = 1
    with open(xml[:-4] + ".json", "w", encoding="utf-8") as handle:
        json.dump(metadata, handle)
    return xml


def run(tmp_path, name, *model):
    out = tmp_path / (name + ".jsonl")
    code = main(["run", "--frames", str(FRAMES), "--no-realtime", "--no-preview", "--quiet", "--output",
                 "jsonl:" + str(out)] + list(model))
    assert code == 0
    with open(str(out)) as handle:
        messages = [json.loads(line) for line in handle]
    return {m["frame"]["index"]: [(d["label"], d["name"], round(d["score"], 3)) for d in m["detections"]]
            for m in messages}


def test_an_offset_one_ir_reports_the_bundled_models_labels_frame_by_frame(tmp_path):
    xml = offset_one_copy(str(tmp_path))
    assert ir_label_offset(xml) == 1 and ir_label_offset(BUNDLED_MODEL) == 0  # what `roadedge convert` would record
    bundled = run(tmp_path, "bundled")
    shifted = run(tmp_path, "offset-one", "--model", xml)
    assert len(bundled) >= 10, "the sample should give a good number of frames with detections"
    assert sorted(shifted) == sorted(bundled)
    for index in sorted(bundled):
        assert shifted[index] == bundled[index], "frame %d" % index


def test_without_the_offset_in_the_metadata_the_labels_shift(tmp_path):
    """The control: the same IR with label_offset left at 0 reports other classes, so the test above can fail."""
    xml = offset_one_copy(str(tmp_path))
    with open(xml[:-4] + ".json", encoding="utf-8") as handle:
        metadata = json.load(handle)
    metadata["output"]["label_offset"] = 0
    with open(xml[:-4] + ".json", "w", encoding="utf-8") as handle:
        json.dump(metadata, handle)
    bundled = run(tmp_path, "bundled")
    wrong = run(tmp_path, "wrong", "--model", xml)
    labels = [label for found in bundled.values() for label, _, _ in found]
    wrong_labels = [label for found in wrong.values() for label, _, _ in found]
    assert labels and wrong_labels != labels
