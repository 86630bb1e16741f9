"""`roadedge synth` and the edge.synth library: determinism, labels, geometry, video, errors."""
import json
import os

import cv2
import numpy as np
import pytest

from edge.synth import DriveRenderer, render_image
from edge.synth.api import render_scene
from roadedge import cli
from roadedge.core.catalog import SYNTH_CLASSES
from roadedge.core.voc import read_voc_xml


def _files(folder):
    out = {}
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                out[os.path.relpath(path, folder)] = handle.read()
    return out


def _synth(*argv):
    return cli.main(["synth"] + [str(a) for a in argv])


# -- data set writing -----------------------------------------------------------

def test_same_seed_same_bytes_and_other_seed_other_images(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed, workers in ((a, 7, 1), (b, 7, 2), (c, 8, 1)):
        assert _synth(out, "--count", 5, "--seed", seed, "--size", "256x192", "--workers", workers) == 0
    files_a, files_b, files_c = _files(a), _files(b), _files(c)
    assert sorted(files_a) == sorted("%s/synth-s7-%05d.%s" % (d, i, e) for i in range(5)
                                     for d, e in (("JPEGImages", "jpg"), ("Annotations", "xml")))
    assert files_a == files_b  # also: rendering in worker processes changes nothing
    images_a = [v for k, v in sorted(files_a.items()) if k.endswith(".jpg")]
    images_c = [v for k, v in sorted(files_c.items()) if k.endswith(".jpg")]
    assert all(x != y for x, y in zip(images_a, images_c))


def test_written_xml_parses_and_matches_the_images(tmp_path, capsys):
    out = tmp_path / "data"
    assert _synth(out, "--count", 12, "--seed", 3, "--size", "320x240", "--quality", 80) == 0
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1 and "12 images" in summary[0]
    xmls = sorted((out / "Annotations").iterdir())
    assert len(xmls) == 12
    n_objects = 0
    for xml in xmls:
        record, problems = read_voc_xml(str(xml))
        assert problems == []
        assert record.filename == xml.stem + ".jpg"
        image = cv2.imread(str(out / "JPEGImages" / record.filename))
        assert record.size == (image.shape[1], image.shape[0], 3) == (320, 240, 3)
        for obj in record.objects:
            x0, y0, x1, y1 = obj.bbox
            assert 0 <= x0 < x1 <= 320 and 0 <= y0 < y1 <= 240
            assert obj.name in SYNTH_CLASSES
            assert obj.truncated in (0, 1) and obj.difficult in (0, 1)
            n_objects += 1
    assert n_objects >= 12
    assert "%d objects" % n_objects in summary[0]


def test_flat_layout_and_class_filter(tmp_path):
    out = tmp_path / "flat"
    assert _synth(out, "--count", 6, "--seed", 2, "--size", "256x256", "--flat", "--classes", "D40") == 0
    names = sorted(os.listdir(out))
    assert names == sorted(["synth-s2-%05d.%s" % (i, e) for i in range(6) for e in ("jpg", "xml")])
    seen = []
    for name in names:
        if name.endswith(".xml"):
            record, problems = read_voc_xml(str(out / name))
            assert problems == []
            seen += [o.name for o in record.objects]
            with open(out / name, encoding="utf-8") as handle:
                assert "<folder>flat</folder>" in handle.read()
    assert seen and set(seen) == {"D40"}


def test_library_images_cover_all_classes_with_valid_boxes():
    counts = dict.fromkeys(SYNTH_CLASSES, 0)
    empty = 0
    for index in range(60):
        image, objects = render_image(11, index, size=(256, 256))
        assert image.shape == (256, 256, 3) and image.dtype == np.uint8
        empty += not objects
        for obj in objects:
            x0, y0, x1, y1 = obj["bbox"]
            assert all(isinstance(v, int) for v in obj["bbox"])
            assert 0 <= x0 < x1 <= 256 and 0 <= y0 < y1 <= 256
            counts[obj["name"]] += 1
    assert all(n >= 3 for n in counts.values()), counts
    assert empty < 12
    again, objects_again = render_image(11, 5, size=(256, 256))
    first, objects_first = render_image(11, 5, size=(256, 256))
    assert np.array_equal(again, first) and objects_again == objects_first


# -- geometry: the damage is where its box says ----------------------------------

def _union(objects, shape, grow):
    mask = np.zeros(shape, bool)
    for obj in objects:
        x0, y0, x1, y1 = obj["bbox"]
        mask[max(0, y0 - grow):y1 + grow, max(0, x0 - grow):x1 + grow] = True
    return mask


@pytest.mark.parametrize("seed", [1, 4])
def test_damage_pixels_lie_inside_their_boxes(seed):
    checked = 0
    for index in range(10):
        with_d, objects = render_scene(seed, index, (400, 300), draw_damages=True, jpeg=False)
        without, objects_w = render_scene(seed, index, (400, 300), draw_damages=False, jpeg=False)
        assert objects == objects_w  # same scene, same labels; only the drawing differs
        changed = np.abs(with_d.astype(int) - without.astype(int)).max(axis=2) > 3
        if not objects:
            assert not changed.any()
            continue
        inside = _union(objects, changed.shape, 3)  # 3 px: the camera blur's spill
        assert changed[~inside].sum() <= 0.002 * max(1, changed.sum())
        for obj in objects:
            x0, y0, x1, y1 = obj["bbox"]
            box_changed = changed[y0:y1, x0:x1]
            if obj["difficult"]:
                continue
            assert box_changed.mean() > 0.03, obj  # the damage really is in its box
            others = [o for o in objects if o is not obj]
            if obj["truncated"] or _union(others, changed.shape, 3)[y0:y1, x0:x1].any():
                continue
            ys, xs = np.nonzero(box_changed)  # and the box is not much larger than the damage
            assert xs.max() - xs.min() + 1 >= 0.7 * (x1 - x0) and ys.max() - ys.min() + 1 >= 0.6 * (y1 - y0), obj
            checked += 1
    assert checked >= 6


def test_potholes_are_darker_than_the_road_around_them():
    found = 0
    for index in range(10):
        image, objects = render_scene(21, index, (400, 400), classes=("D40",), jpeg=False)
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(float)
        for obj in objects:
            x0, y0, x1, y1 = obj["bbox"]
            if obj["difficult"] or obj["truncated"]:
                continue
            pad = max(4, (y1 - y0) // 2)
            ring = gray.copy()
            ring[y0:y1, x0:x1] = np.nan
            ring = ring[max(0, y0 - pad):y1 + pad, max(0, x0 - pad):x1 + pad]
            inner = gray[y0 + (y1 - y0) // 4:y1 - (y1 - y0) // 4, x0 + (x1 - x0) // 4:x1 - (x1 - x0) // 4]
            assert inner.mean() < np.nanmean(ring) - 8
            found += 1
    assert found >= 4


# -- video ----------------------------------------------------------------------

def test_video_frames_labels_and_tracks(tmp_path):
    out, again = tmp_path / "drive", tmp_path / "again"
    for folder in (out, again):
        assert _synth(folder, "--video", "--seed", 5, "--duration", 3, "--fps", 10, "--size", "320x180") == 0
    assert sorted(os.listdir(out)) == ["drive.json", "drive.jsonl", "drive.mp4", "drive.nmea", "drive.yaml"]
    assert _files(out) == _files(again)
    capture = cv2.VideoCapture(str(out / "drive.mp4"))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 30
    decoded = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        assert frame.shape == (180, 320, 3)
        decoded += 1
    assert decoded == 30
    with open(out / "drive.jsonl", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    assert [r["frame"] for r in records] == list(range(30))
    assert records[7]["t"] == pytest.approx(0.7)
    tracks = {}
    for r in records:
        assert (r["width"], r["height"]) == (320, 180)
        for obj in r["objects"]:
            assert set(obj) == {"name", "bbox", "truncated", "difficult", "track_id"}
            x0, y0, x1, y1 = obj["bbox"]
            assert 0 <= x0 < x1 <= 320 and 0 <= y0 < y1 <= 180
            tracks.setdefault(obj["track_id"], {})[r["frame"]] = obj
    approached = 0
    for frames in tracks.values():
        for i in sorted(frames):
            a, b = frames[i], frames.get(i + 1)
            if b is None or a["truncated"] or b["truncated"]:
                continue
            centre_a, centre_b = (a["bbox"][1] + a["bbox"][3]) / 2, (b["bbox"][1] + b["bbox"][3]) / 2
            assert centre_b >= centre_a - 1.5  # never moves up the frame while we drive towards it
            approached += centre_b > centre_a + 1
        last = max(frames)
        if last < 29:  # gone before the end: it left through the bottom or a side, under or past the camera
            x0, y0, x1, y1 = frames[last]["bbox"]
            assert frames[last]["truncated"] == 1 and (y1 == 180 or x0 == 0 or x1 == 320)
    assert approached >= 5


def _inside(points, poly):
    """Even-odd point-in-polygon test, vectorised over points."""
    a, b = poly, np.roll(poly, -1, axis=0)
    px, pz = points[:, :1], points[:, 1:]
    crosses = (a[:, 1] > pz) != (b[:, 1] > pz)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = a[:, 0] + (pz - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    return (crosses & (px < x_at)).sum(axis=1) % 2 == 1


def _world_samples(damage, step=0.01):
    """Dense ground points on every crack segment and over every polygon (edges and interior)."""
    segs, polys = [], []
    if hasattr(damage, "seg_a"):
        segs.append((damage.seg_a, damage.seg_b))
        if damage.outline is not None:
            polys.append(damage.outline)
    elif hasattr(damage, "rim"):
        polys.append(damage.rim)
    else:
        polys += damage.polys
    segs += [(p, np.roll(p, -1, axis=0)) for p in polys]
    out = []
    for a, b in segs:
        n = int(np.ceil(np.linalg.norm(b - a, axis=1).max() / step)) + 1
        t = np.linspace(0, 1, n)[None, :, None]
        out.append((a[:, None, :] + t * (b - a)[:, None, :]).reshape(-1, 2))
    for p in polys:
        lo, hi = p.min(axis=0), p.max(axis=0)
        gx, gz = np.meshgrid(np.arange(lo[0], hi[0], step * 2), np.arange(lo[1], hi[1], step * 2))
        grid = np.column_stack([gx.ravel(), gz.ravel()])
        out.append(grid[_inside(grid, p)])
    return np.vstack(out)


def test_drive_boxes_match_brute_force_projection_with_near_clipping():
    from edge.synth import raster
    from edge.synth.camera import NEAR

    drive = DriveRenderer(13, size=(320, 180))
    straddling = 0
    for i in range(0, 300, 2):
        cam = drive.camera(i / 10.0)
        for damage in drive.world.items(cam.z0 - 20, cam.z0 + 70)["damages"]:
            prepared = damage.prepare(cam)
            obj = prepared and raster.label(damage.name, prepared[0], prepared[1], cam)
            pts = _world_samples(damage)
            depth = cam.depth(pts)
            px = cam.project(pts[depth >= NEAR])
            px = px[(px[:, 0] > -0.5) & (px[:, 0] < 319.5) & (px[:, 1] > -0.5) & (px[:, 1] < 179.5)]
            if obj is None:
                assert len(px) == 0
                continue
            straddling += bool((depth < NEAR).any())
            assert len(px) > 0
            x0, y0, x1, y1 = obj["bbox"]
            lo, hi = px.min(axis=0), px.max(axis=0)
            assert x0 <= lo[0] + 1 and y0 <= lo[1] + 1 and x1 >= hi[0] and y1 >= hi[1], (obj, lo, hi)
            slack = prepared[1] + 2
            assert x0 >= lo[0] - slack and y0 >= lo[1] - slack and x1 <= hi[0] + slack + 1 and y1 <= hi[1] + slack + 1
    assert straddling >= 3  # damages passing under the camera were exercised


def test_drive_frames_are_independent_of_rendering_order():
    late = DriveRenderer(9, size=(256, 144)).frame(12, 15)
    drive = DriveRenderer(9, size=(256, 144))
    for i in range(13):
        image, objects = drive.frame(i, 15)
    assert np.array_equal(image, late[0]) and objects == late[1]
    assert all("track_id" in o for o in objects)


# -- errors -----------------------------------------------------------------------

@pytest.mark.parametrize("argv, words", [
    (["--classes", "D40,D99"], ["D99", "D00,D10,D20,D40,D43,D44"]),
    (["--size", "600by600"], ["--size", "600by600"]),
    (["--size", "10x10"], ["--size"]),
    (["--quality", "0"], ["--quality"]),
    (["--video", "--count", "3"], ["--count"]),
    (["--video", "--size", "321x180"], ["321x180", "even"]),
])
def test_bad_options_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, argv, words):
    out = tmp_path / "out"
    assert _synth(out, *argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("roadedge: error: ")
    assert all(w in err[0] for w in words)
    assert not out.exists() and os.listdir(tmp_path) == []


def test_existing_output_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert _synth(out, "--count", 2, "--size", "128x128") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0]
    assert os.listdir(out) == ["keep.txt"] and sorted(os.listdir(tmp_path)) == ["out"]
    assert _synth(out, "--count", 2, "--size", "128x128", "--overwrite") == 0
    assert sorted(os.listdir(out)) == ["Annotations", "JPEGImages"]


def test_failure_midway_leaves_nothing(tmp_path, monkeypatch, capsys):
    from edge.synth import writer

    calls = []

    def failing(*args):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return render_image(*args)

    monkeypatch.setattr(writer, "render_image", failing)
    out = tmp_path / "out"
    assert _synth(out, "--count", 6, "--size", "128x128", "--workers", 1) == 130
    assert len(calls) == 3
    assert os.listdir(tmp_path) == []
