"""roadedge.core.fsutil: partial folders of a killed writer are removed by the next writer of the same target, never
the partial of a live writer, never anything else (issue 11)."""
import os
import signal
import subprocess
import sys

import pytest

from roadedge.cli import main
from roadedge.core import fsutil
from tests.kill9 import kill_9_when

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python(*argv, **kwargs):
    """A child `python3 ...` that imports this checkout's roadedge."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable] + [str(a) for a in argv], cwd=ROOT, env=env, **kwargs)


def leftovers(target):
    """Every `.NAME.*` beside target: partial folders, their locks, .old folders."""
    head = "." + os.path.basename(str(target)) + "."
    return sorted(n for n in os.listdir(os.path.dirname(str(target))) if n.startswith(head))


def started_writing(target):
    """A partial folder beside target holds something (a kill before its first file would test nothing)."""
    for name in leftovers(target):
        try:
            if name.endswith(".partial") and os.listdir(os.path.join(os.path.dirname(str(target)), name)):
                return True
        except OSError:  # gone between the two listings: the run finished
            pass
    return False


def tree(root):
    found = {}
    for folder, _, files in os.walk(str(root)):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, str(root))] = handle.read()
    return found


@pytest.fixture(scope="module")
def synth_voc(tmp_path_factory):
    """300 frames (VOC, RDD layout): converting them takes a moment, long enough to be killed midway. 30 are
    rendered, then copied under other names 9 times (rendering is the slow part, converting does not care)."""
    root = tmp_path_factory.mktemp("synth") / "voc"
    child = python("-m", "roadedge", "synth", root, "--count", 30, "--size", "320x240", "--seed", 3,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    stems = sorted(name[:-4] for name in os.listdir(str(root / "Annotations")))
    for copy in range(1, 10):
        for stem in stems:
            twin = "{}-copy{}".format(stem, copy)
            (root / "JPEGImages" / (twin + ".jpg")).write_bytes((root / "JPEGImages" / (stem + ".jpg")).read_bytes())
            xml = (root / "Annotations" / (stem + ".xml")).read_text(encoding="utf-8")
            (root / "Annotations" / (twin + ".xml")).write_text(xml.replace(stem + ".jpg", twin + ".jpg"), encoding="utf-8")
    assert len(os.listdir(str(root / "JPEGImages"))) == 300
    return root


def test_a_convert_killed_with_kill_9_leaves_a_partial_that_the_next_run_removes(synth_voc, tmp_path):
    reference = tmp_path / "reference"
    assert main(["dataset", "convert", str(synth_voc), str(reference), "--classes", "synth"]) == 0
    outs = [tmp_path / ("out%d" % attempt) for attempt in range(3)]
    attempt = kill_9_when(lambda n: ["-m", "roadedge", "dataset", "convert", synth_voc, outs[n], "--classes", "synth"],
                          lambda n: started_writing(outs[n]))
    assert attempt is not None, "the convert always finished before the kill"
    out = outs[attempt]
    assert not out.exists()
    left = leftovers(out)
    partials = [name for name in left if name.endswith(".partial")]
    assert len(partials) == 1 and left == sorted(partials + [partials[0] + ".lock"]), left
    assert os.listdir(str(out.parent / partials[0]))  # it had started writing

    assert main(["dataset", "convert", str(synth_voc), str(out), "--classes", "synth"]) == 0
    assert leftovers(out) == []
    assert tree(out) == tree(reference)  # complete: the same bytes as an uninterrupted convert


LIVE_WRITER = """
import os, sys
from roadedge.core.fsutil import atomic_dir
with atomic_dir(sys.argv[1]) as tmp:
    with open(os.path.join(tmp, "work.txt"), "w") as handle:
        handle.write("half")
    print(tmp, flush=True)
    if sys.stdin.readline().strip() == "fail":
        raise SystemExit(3)
"""


def test_a_live_writers_partial_is_left_alone(synth_voc, tmp_path):
    out = tmp_path / "out"
    child = python("-c", LIVE_WRITER, out, stdin=subprocess.PIPE, stdout=subprocess.PIPE, universal_newlines=True)
    try:
        partial = child.stdout.readline().strip()
        assert partial.endswith(".partial") and os.path.isfile(os.path.join(partial, "work.txt"))
        assert fsutil.clean_stale_partials(str(out)) == []
        # a whole convert of the same target runs beside it and leaves the writer's partial alone
        assert main(["dataset", "convert", str(synth_voc), str(out), "--classes", "synth"]) == 0
        assert os.path.isfile(os.path.join(partial, "work.txt")) and os.path.isfile(partial + ".lock")
        assert leftovers(out) == sorted([os.path.basename(partial), os.path.basename(partial) + ".lock"])
        child.stdin.write("fail\n")
        child.stdin.flush()
        assert child.wait(timeout=60) == 3
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert leftovers(out) == []  # the writer's own failure path removed its partial and lock
    assert (out / "train").is_dir()


def test_a_writer_killed_between_the_two_renames_gets_the_previous_output_back(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("previous output")
    script = """
import os, signal, sys
from roadedge.core import fsutil
from tests.kill9 import kill_9_when
real = os.replace
def replace(src, dst):
    real(src, dst)
    if dst.endswith(".partial.old"):
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
with fsutil.atomic_dir(sys.argv[1], overwrite=True) as tmp:
    open(os.path.join(tmp, "new.txt"), "w").write("new output")
"""
    child = python("-c", script, out)
    assert child.wait(timeout=60) == -signal.SIGKILL
    assert not out.exists() and len(leftovers(out)) == 3  # .partial (new), .partial.old (previous), .partial.lock
    removed = fsutil.clean_stale_partials(str(out))
    assert len(removed) == 1 and leftovers(out) == []
    assert tree(out) == {"old.txt": b"previous output"}


def test_a_stale_old_folder_is_removed_when_the_target_exists_again(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    stem = str(tmp_path / ".out.0123456789ab")
    os.mkdir(stem + ".partial")
    os.mkdir(stem + ".partial.old")
    with open(stem + ".partial.lock", "w") as handle:  # names a live PID (ours), but nobody holds the lock
        handle.write("pid {} on this host\n".format(os.getpid()))
    assert fsutil.clean_stale_partials(str(out)) == [stem + ".partial"]
    assert leftovers(out) == [] and out.is_dir()


def test_only_the_targets_own_stale_partials_are_touched(tmp_path):
    out = tmp_path / "out"
    keep = {
        ".out.abc123_x.partial": "dir",                 # an older roadedge's partial: no lock, nobody can tell
        ".out.b.0123456789ab.partial": "dir",           # another target's (out.b) partial ...
        ".out.b.0123456789ab.partial.lock": "file",     # ... and its free lock
        ".out.0123456789ab.partial.lock.bak": "file",   # not a lock name
        ".out.XYZ.partial.lock": "file",                # not a token
        "out.0123456789ab.partial": "dir",              # not hidden
        "unrelated": "dir",
    }
    for name, kind in keep.items():
        path = tmp_path / name
        path.mkdir() if kind == "dir" else path.write_text("x")
    assert fsutil.clean_stale_partials(str(out)) == []
    assert sorted(os.listdir(str(tmp_path))) == sorted(keep)


STAGING_WRITER = """
import os, sys
from roadedge.core.fsutil import staging_dir
with staging_dir(sys.argv[1]) as tmp:
    print(tmp, flush=True)
    sys.stdin.readline()
"""


def test_a_killed_staging_folder_is_removed_by_the_next_one(tmp_path):
    target = tmp_path / "ir" / "model"
    child = python("-c", STAGING_WRITER, target, stdin=subprocess.PIPE, stdout=subprocess.PIPE, universal_newlines=True)
    try:
        first = child.stdout.readline().strip()
        with fsutil.staging_dir(str(target)) as second:  # the first writer is alive: both partials exist
            assert os.path.isdir(first) and os.path.isdir(second)
        child.kill()
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert leftovers(target) == [os.path.basename(first), os.path.basename(first) + ".lock"]
    with fsutil.staging_dir(str(target)):
        assert not os.path.exists(first)
    assert leftovers(target) == []


FILE_WRITER = """
import sys
from roadedge.core.fsutil import atomic_file
with atomic_file(sys.argv[1]) as handle:
    handle.write(b"half of it")
    handle.flush()
    print("writing", flush=True)
    sys.stdin.readline()
"""


def test_a_file_writer_killed_with_kill_9_leaves_a_temp_file_the_next_writer_removes(tmp_path):
    import subprocess

    target = tmp_path / "summary.json"
    child = python("-c", FILE_WRITER, target, stdin=subprocess.PIPE, stdout=subprocess.PIPE, universal_newlines=True)
    try:
        assert child.stdout.readline().strip() == "writing"
        orphan = leftovers(target)
        assert len(orphan) == 1 and orphan[0].endswith(".tmp")
        with fsutil.atomic_file(str(target)) as handle:  # the child is alive: its temp file stays
            handle.write(b"first")
        assert leftovers(target) == orphan and target.read_bytes() == b"first"
        child.kill()  # kill -9 in the middle of its write
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    with fsutil.atomic_file(str(target)) as handle:
        handle.write(b"second")
    assert leftovers(target) == [] and target.read_bytes() == b"second"
