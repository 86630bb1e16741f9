"""A read-only or full output folder: one line naming the path and the reason, exit 2, nothing half-written, no
traceback (issue 11). Real read-only and tiny tmpfs mounts where this machine permits mounting (tests run as root,
where chmod does not stop writes); the same errors simulated with monkeypatch everywhere."""
import errno
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from roadedge.cli import main

RUN = ["run", "--source", "sample", "--frames", "3", "--no-realtime", "--no-preview", "--quiet"]


def _mount(folder, options):
    """mount -t tmpfs -o OPTIONS on folder, or skip the test with the reason."""
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command on this machine")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "roadedge-test", str(folder)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here ({}): {}".format(options, done.stderr.strip() or done.returncode))
    return folder


@pytest.fixture
def read_only(tmp_path):
    """A read-only folder: a tmpfs mounted ro (root writes through chmod 0o555), or chmod 0o555 when not root."""
    folder = tmp_path / "ro"
    if os.geteuid() != 0:
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    _mount(folder, "ro,size=1m")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.fixture
def tiny(tmp_path):
    """A 64 KiB tmpfs: a disk that fills up during the write."""
    folder = _mount(tmp_path / "tiny", "size=64k")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.fixture
def big_voc(tmp_path):
    """12 noise JPEGs of 200x150 (about 40 KB each: more than the tiny disk holds) with one box each."""
    root = tmp_path / "voc"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, size=(150, 200, 3), dtype=np.uint8)).save(root / ("img%02d.jpg" % i),
                                                                                      quality=95)
        (root / ("img%02d.xml" % i)).write_text(
            "<annotation><filename>img%02d.jpg</filename><size><width>200</width><height>150</height></size>"
            "<object><name>D40</name><bndbox><xmin>10</xmin><ymin>10</ymin><xmax>90</xmax><ymax>80</ymax></bndbox>"
            "</object></annotation>" % i)
    return root


def fill(folder):
    """Write a file until the disk is full."""
    with open(str(folder / "filler"), "wb", buffering=0) as handle:
        with pytest.raises(OSError) as caught:
            while True:
                handle.write(b"\0" * 1024)
    assert caught.value.errno == errno.ENOSPC


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


# --- dataset convert -------------------------------------------------------------------------------------------


def test_convert_into_a_read_only_folder(big_voc, read_only, capsys):
    out = read_only / "out"
    assert main(["dataset", "convert", str(big_voc), str(out)]) == 2
    assert one_error_line(capsys) == "roadedge: error: {}: cannot write (read-only file system)".format(out)
    assert os.listdir(str(read_only)) == []


def test_convert_into_a_read_only_folder_below_a_missing_one(big_voc, read_only, capsys):
    out = read_only / "not" / "yet" / "out"
    assert main(["dataset", "convert", str(big_voc), str(out)]) == 2
    assert one_error_line(capsys) == "roadedge: error: {}: cannot write (read-only file system)".format(out)


def test_convert_onto_a_disk_that_fills_up(big_voc, tiny, capsys):
    out = tiny / "out"
    assert main(["dataset", "convert", str(big_voc), str(out)]) == 2
    assert one_error_line(capsys) == "roadedge: error: {}: cannot write (disk full)".format(out)
    assert os.listdir(str(tiny)) == []  # no partial folder, no lock file, no output
    assert shutil.disk_usage(str(tiny)).used == 0


def test_convert_with_overwrite_onto_a_full_disk_keeps_the_previous_output(voc_fixture_dir, tiny, capsys):
    out = tiny / "out"
    assert main(["dataset", "convert", str(voc_fixture_dir), str(out), "--empty", "keep"]) == 0
    before = sorted(os.listdir(str(out)))
    fill(tiny)
    capsys.readouterr()
    assert main(["dataset", "convert", str(voc_fixture_dir), str(out), "--empty", "keep", "--overwrite"]) == 2
    assert one_error_line(capsys) == "roadedge: error: {}: cannot write (disk full)".format(out)
    assert sorted(os.listdir(str(out))) == before and sorted(os.listdir(str(tiny))) == ["filler", "out"]


# the same without a mount: an OSError where the write happens


def _enospc_after_half(source, target, link):
    with open(target, "wb") as handle:
        handle.write(b"half an image")
    raise OSError(errno.ENOSPC, "No space left on device", target)


class _FullJson:
    """json, except that dump writes a little and then meets a full disk (an OSError without a file name)."""

    def __getattr__(self, name):
        return getattr(json, name)

    @staticmethod
    def dump(obj, handle, **kwargs):
        handle.write("{")
        raise OSError(errno.ENOSPC, "No space left on device")


def _erofs(*args, **kwargs):
    raise OSError(errno.EROFS, "Read-only file system", args[0] if args else None)


SIMULATED = {
    "ENOSPC copying an image": (lambda m, od: m.setattr(od, "_place_image", _enospc_after_half), "disk full"),
    "ENOSPC writing JSON, no file name": (lambda m, od: m.setattr(od, "json", _FullJson()), "disk full"),
    "EROFS making the partial": (lambda m, od: m.setattr(os, "mkdir", _erofs), "read-only file system"),
    "EDQUOT on the final rename": (lambda m, od: m.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(
        OSError(errno.EDQUOT, "Disk quota exceeded", a[0], None, a[1]))), "disk quota exceeded"),
}


@pytest.mark.parametrize("case", sorted(SIMULATED))
def test_convert_write_errors_simulated(voc_fixture_dir, tmp_path, monkeypatch, capsys, case):
    import converters.sagemaker_od as sagemaker_od

    patch, reason = SIMULATED[case]
    out = tmp_path / "out"
    patch(monkeypatch, sagemaker_od)
    code = main(["dataset", "convert", str(voc_fixture_dir), str(out)])
    monkeypatch.undo()
    assert code == 2
    assert one_error_line(capsys) == "roadedge: error: {}: cannot write ({})".format(out, reason)
    assert sorted(os.listdir(str(tmp_path))) == ["voc"]


def test_a_missing_input_during_the_write_still_names_the_input(voc_fixture_dir, tmp_path, monkeypatch, capsys):
    # not every OSError in the block is the output's: a vanished image keeps its own name
    import converters.sagemaker_od as sagemaker_od

    gone = str(voc_fixture_dir / "JPEGImages" / "rdd_order.jpg")

    def vanished(source, target, link):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", gone)

    monkeypatch.setattr(sagemaker_od, "_place_image", vanished)
    assert main(["dataset", "convert", str(voc_fixture_dir), str(tmp_path / "out")]) == 2
    assert one_error_line(capsys) == "roadedge: error: {}: no such file or folder".format(gone)
    assert sorted(os.listdir(str(tmp_path))) == ["voc"]


# --- roadedge run --summary ------------------------------------------------------------------------------------


def test_run_summary_into_a_read_only_folder_fails_before_the_run(read_only, tmp_path, capsys):
    summary = read_only / "summary.json"
    detections = tmp_path / "detections.jsonl"
    assert main(RUN + ["--output", "jsonl:" + str(detections), "--summary", str(summary)]) == 2
    assert one_error_line(capsys) == "roadedge: error: {}: cannot write (read-only file system)".format(summary)
    assert not detections.exists()  # refused before the source and the model were opened


def test_run_summary_onto_a_full_disk(tiny, tmp_path, capsys):
    fill(tiny)
    summary = tiny / "summary.json"
    assert main(RUN + ["--output", "jsonl:" + str(tmp_path / "d.jsonl"), "--summary", str(summary)]) == 2
    assert one_error_line(capsys) == "roadedge: error: {}: cannot write (disk full)".format(summary)
    assert os.listdir(str(tiny)) == ["filler"]


def test_run_summary_write_errors_simulated(tmp_path, monkeypatch, capsys):
    import edge.run_command as run_command
    from roadedge.core import fsutil

    summary = tmp_path / "out" / "summary.json"
    monkeypatch.setattr(run_command, "json", _FullJson())
    assert main(RUN + ["--output", "jsonl:" + str(tmp_path / "d.jsonl"), "--summary", str(summary)]) == 2
    assert one_error_line(capsys) == "roadedge: error: {}: cannot write (disk full)".format(summary)
    assert os.listdir(str(tmp_path / "out")) == []  # no half-written summary, no temporary file
    monkeypatch.undo()

    monkeypatch.setattr(fsutil.tempfile, "mkstemp", _erofs)
    assert main(RUN + ["--output", "jsonl:" + str(tmp_path / "e.jsonl"), "--summary", str(summary)]) == 2
    assert one_error_line(capsys) == "roadedge: error: {}: cannot write (read-only file system)".format(summary)
    assert not (tmp_path / "e.jsonl").exists()
