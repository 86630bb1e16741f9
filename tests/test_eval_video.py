"""`roadedge eval` on a rendered drive (drive.mp4 + drive.jsonl): the numbers of the same frames as a VOC folder."""
import contextlib
import io
import json
import os
import shutil

import cv2
import pytest

from roadedge.cli import main
from roadedge.core.voc import write_voc_xml
from tests.test_evaluate import one_error_line
from training.evaluate import evaluate_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED = os.path.join(REPO, "edge", "models", "road-damage-ssd.xml")


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    """A 2 s drive at 5 fps (10 frames of 320x180) and its labels."""
    folder = tmp_path_factory.mktemp("eval-video") / "drive"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["synth", str(folder), "--video", "--duration", "2", "--fps", "5", "--size", "320x180",
                     "--seed", "3"]) == 0
    labels = [json.loads(line) for line in (folder / "drive.jsonl").read_text().splitlines()]
    assert len(labels) == 10
    return folder, labels


def as_voc(video, labels, out, frames):
    """The chosen frames decoded here, on their own, written as PNG (lossless) with VOC XML from the jsonl."""
    out.mkdir()
    capture = cv2.VideoCapture(str(video))
    for index in range(max(frames) + 1):
        ok, image = capture.read()
        assert ok
        if index in frames:
            name = "frame-{:05d}".format(index)
            assert cv2.imwrite(str(out / (name + ".png")), image)
            record = labels[index]
            (out / (name + ".xml")).write_bytes(
                write_voc_xml(name + ".png", out.name, record["width"], record["height"], 3, record["objects"]))
    capture.release()
    return out


def gt_counts(labels, frames):
    counts = {}
    for index in frames:
        for obj in labels[index]["objects"]:
            if not obj["difficult"]:
                counts[obj["name"]] = counts.get(obj["name"], 0) + 1
    return counts


def comparable(report):
    return {key: report[key] for key in ("images", "map50", "map", "classes")}


def test_drive_video_gives_the_numbers_of_its_frames_as_a_voc_folder(drive, tmp_path):
    folder, labels = drive
    video_report = evaluate_model(BUNDLED, str(folder))
    voc_report = evaluate_model(BUNDLED, str(as_voc(folder / "drive.mp4", labels, tmp_path / "voc", range(10))))
    assert video_report["format"] == "video" and video_report["images"] == 10
    assert comparable(video_report) == comparable(voc_report)
    assert {c["name"]: c["gt"] for c in video_report["classes"] if c["gt"]} == gt_counts(labels, range(10))
    assert sum(c["detections"] for c in video_report["classes"]) > 0 and 0.2 < video_report["map"] < video_report["map50"]
    # every 3rd frame, at most 3: frames 0, 3, 6; a VIDEO.mp4 path works as well as its folder
    some = evaluate_model(BUNDLED, str(folder / "drive.mp4"), every=3, limit=3)
    voc_some = evaluate_model(BUNDLED, str(as_voc(folder / "drive.mp4", labels, tmp_path / "voc-some", (0, 3, 6))))
    assert some["every"] == 3 and comparable(some) == comparable(voc_some)
    assert {c["name"]: c["gt"] for c in some["classes"] if c["gt"]} == gt_counts(labels, (0, 3, 6))


def test_min_size_makes_boxes_small_at_the_model_input_difficult(drive, tmp_path, capsys):
    """--min-size 14 on the drive gives the numbers of the same frames with those boxes marked difficult by hand (the
    model takes 256x256: a 320x180 frame's box is 0.8 x as wide and 1.42 x as high there)."""
    folder, labels = drive
    marked = json.loads(json.dumps(labels))
    small = 0
    for record in marked:
        for obj in record["objects"]:
            x0, y0, x1, y1 = obj["bbox"]
            if not obj["difficult"] and ((x1 - x0) * 256 / 320 < 14 or (y1 - y0) * 256 / 180 < 14):
                obj["difficult"], small = 1, small + 1
    assert small > 0 and small < sum(len(r["objects"]) for r in labels)
    sized = evaluate_model(BUNDLED, str(folder), min_size=14)
    by_hand = evaluate_model(BUNDLED, str(as_voc(folder / "drive.mp4", marked, tmp_path / "voc", range(10))))
    assert sized["min_size"] == 14 and comparable(sized) == comparable(by_hand)
    assert sum(c["gt"] for c in sized["classes"]) == sum(gt_counts(labels, range(10)).values()) - small
    assert main(["eval", BUNDLED, str(folder), "--min-size", "14"]) == 0
    assert "ground truth under 14 px at the model's input counts as difficult" in capsys.readouterr().out
    assert main(["eval", BUNDLED, str(folder), "--min-size", "-1"]) == 2
    assert "--min-size -1: expected pixels" in capsys.readouterr().err


def test_several_folders_are_one_set(drive, tmp_path, capsys):
    """Two folders give the numbers of one VOC folder holding the frames of both."""
    folder, labels = drive
    first = as_voc(folder / "drive.mp4", labels, tmp_path / "first", (0, 1, 2, 3, 4))
    second = as_voc(folder / "drive.mp4", labels, tmp_path / "second", (5, 6, 7, 8, 9))
    pooled = evaluate_model(BUNDLED, [str(first), str(second)])
    assert pooled["data"] == [str(first), str(second)] and pooled["format"] == "voc"
    assert comparable(pooled) == comparable(evaluate_model(BUNDLED, str(folder)))
    assert main(["eval", BUNDLED, str(first), str(folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 15 and report["format"] == "mixed" and report["data"] == [str(first), str(folder)]


def test_eval_command_prints_frames(drive, capsys):
    folder, labels = drive
    assert main(["eval", BUNDLED, str(folder), "--every", "5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["images"], report["every"], report["format"]) == (2, 5, "video")
    assert main(["eval", BUNDLED, str(folder), "--limit", "2"]) == 0
    assert " on 2 frames of {} (".format(folder) in capsys.readouterr().out.splitlines()[0]


def broken_copy(folder, tmp_path, name, edit):
    copy = tmp_path / name
    shutil.copytree(folder, copy)
    lines = (copy / "drive.jsonl").read_text().splitlines(True)
    edit(copy, lines)
    (copy / "drive.jsonl").write_text("".join(lines))
    return copy


def test_broken_drives_are_one_line_errors(drive, tmp_path, capsys):
    folder, _ = drive
    gap = broken_copy(folder, tmp_path, "gap", lambda _, lines: lines.pop(4))
    assert main(["eval", BUNDLED, str(gap)]) == 2
    assert "{}:5: frame 5, expected 4 (one line per frame".format(gap / "drive.jsonl") in one_error_line(capsys)

    short = broken_copy(folder, tmp_path, "short", lambda _, lines: lines.pop())
    assert main(["eval", BUNDLED, str(short)]) == 2
    assert "{}: 10 frames, but {} labels 9".format(short / "drive.mp4", short / "drive.jsonl") in one_error_line(capsys)

    def garble(_, lines):
        lines[2] = lines[2][:40] + "\n"

    broken = broken_copy(folder, tmp_path, "broken", garble)
    assert main(["eval", BUNDLED, str(broken)]) == 2
    assert "{}:3: not a JSON object".format(broken / "drive.jsonl") in one_error_line(capsys)

    def no_bbox(_, lines):
        record = json.loads(lines[1])
        record["objects"] = [{"name": "D40"}]
        lines[1] = json.dumps(record) + "\n"

    bad = broken_copy(folder, tmp_path, "bad", no_bbox)
    assert main(["eval", BUNDLED, str(bad)]) == 2
    assert "{}:2: expected frame, width, height and objects".format(bad / "drive.jsonl") in one_error_line(capsys)

    missing = broken_copy(folder, tmp_path, "missing", lambda copy, _: os.remove(copy / "drive.mp4"))
    assert main(["eval", BUNDLED, str(missing)]) == 2
    assert "{}: not found (the video;".format(missing / "drive.mp4") in one_error_line(capsys)

    assert main(["eval", BUNDLED, str(folder), "--every", "0"]) == 2
    assert "--every 0: expected a positive step" in one_error_line(capsys)
