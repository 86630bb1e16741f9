"""Writes that never leave a half-written file or folder behind."""
import contextlib
import hashlib
import os
import shutil
import tempfile

from roadedge.core.errors import RoadedgeError


@contextlib.contextmanager
def atomic_file(path, mode="wb"):
    """Yield a file object whose contents replace `path` only if the block succeeds."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --- where an output may go -------------------------------------------------------------------------


def _inside(path, folder):
    """True when `path` is `folder` or lies below it (both real, absolute paths)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _relation(out_real, input_real):
    if out_real == input_real:
        return "is"
    if _inside(input_real, out_real):
        return "contains"
    if _inside(out_real, input_real):
        return "lies inside"
    return None


def check_not_overlapping(path, inputs, noun="output folder"):
    """Refuse an output that is, contains or lies inside one of `inputs` (real paths: symlinks resolved).

    Writing there would mix the output into its input, and replacing it
    (--overwrite, or the swap at the end of atomic_dir) would delete the input.
    """
    path = os.path.abspath(os.fspath(path))
    out_real = os.path.realpath(path)
    for given in inputs:
        given = os.path.abspath(os.fspath(given))
        relation = _relation(out_real, os.path.realpath(given))
        if relation:
            real = "" if os.path.realpath(given) == given and out_real == path else " (real paths {} and {})".format(
                out_real, os.path.realpath(given))
            raise RoadedgeError("{}: the {} {} the input {}{}; choose an output outside the input".format(
                path, noun, relation, given, real))


def check_output(path, inputs=(), overwrite=False, noun="output folder"):
    """Everything to check before work starts on an output folder `path` written with atomic_dir.

    An output that overlaps an input, replacing the current folder, or an
    existing `path` without `overwrite` is refused.
    """
    path = os.path.abspath(os.fspath(path))
    check_not_overlapping(path, inputs, noun)
    if os.path.lexists(path):
        if not overwrite:
            raise RoadedgeError("{}: {} already exists (pass --overwrite to replace it)".format(path, noun))
        cwd = os.path.realpath(os.getcwd())
        if _inside(cwd, os.path.realpath(path)):
            raise RoadedgeError("{}: the {} contains the current folder {}; replacing it would delete the folder "
                                "you are in".format(path, noun, cwd))
    return path


@contextlib.contextmanager
def atomic_dir(path, overwrite=False, inputs=()):
    """Yield a temporary sibling folder that becomes `path` only if the block succeeds.

    Checked before any work is done (check_output): an existing `path` needs
    `overwrite`; an output that is, contains or lies inside one of `inputs` is
    refused.
    """
    path = check_output(path, inputs, overwrite)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".", suffix=".partial", dir=parent)
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; the result should look like any new folder
        if os.path.exists(path):
            old = tmp + ".old"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sha256_file(path):
    """Hex sha256 of a file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
