"""Writes that never leave a half-written file or folder behind.

A folder is written as a hidden sibling `.NAME.<token>.partial` and renamed
to NAME when the work succeeds. Its writer holds an flock on the sibling
`.NAME.<token>.partial.lock` for as long as it works: the kernel drops that
lock when the process ends, however it ends (kill -9 included), so the next
writer of the same NAME can tell a partial whose writer is gone (the lock can
be taken) from one that is still being written (it cannot), even after its PID
was reused, and removes only the former.
"""
import contextlib
import errno
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time

from roadedge.core.errors import RoadedgeError, file_error

PARTIAL, LOCK, OLD = ".partial", ".partial.lock", ".partial.old"
_TOKEN = re.compile(r"^[0-9a-f]{12}$")
WRITE_ERRNOS = frozenset((errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG))


@contextlib.contextmanager
def atomic_file(path, mode="wb"):
    """Yield a file object whose contents replace `path` only if the block succeeds."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    _clean_stale_temp_files(path)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    _lock(fd)  # held while this file is written: a later writer can tell an orphan (kill -9) from a live one
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


def _lock(fd, wait=True):
    """flock `fd`; False when another process holds it (with wait=False). True where flock does not exist."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): nothing is ever taken for an orphan
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError:
        return False
    return True


def _clean_stale_temp_files(path):
    """Remove `.NAME.*.tmp` beside `path` left by a writer that is gone (its flock can be taken); never a live one's."""
    folder, head = os.path.dirname(os.path.abspath(path)), "." + os.path.basename(path) + "."
    try:
        names = [n for n in os.listdir(folder) if n.startswith(head) and n.endswith(".tmp")]
    except OSError:
        return
    for name in names:
        stale = os.path.join(folder, name)
        try:
            fd = os.open(stale, os.O_RDONLY)
        except OSError:
            continue
        try:
            if _lock(fd, wait=False) and _has_lock_support():
                with contextlib.suppress(OSError):
                    os.unlink(stale)
        finally:
            os.close(fd)


def _has_lock_support():
    try:
        import fcntl  # noqa: F401
    except ImportError:
        return False
    return True


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable_folder(folder, path=None):
    """Raise `file_error(path)` now, before any work, when no file can be made in `folder`.

    Probes the nearest folder that exists (creating none): a read-only file
    system, a folder without write permission or a path through a file fails
    here; a disk that fills up during the work is reported by the writer.
    """
    folder = os.path.abspath(os.fspath(folder))
    while not os.path.lexists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    try:
        fd, probe = tempfile.mkstemp(prefix=".roadedge-probe.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise file_error(path or folder, err, "write") from None


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

    Stale partials of `path` (their writer is gone) are removed first; then an
    output that overlaps an input, replacing the current folder, an existing
    `path` without `overwrite`, or a folder where nothing can be written
    (read-only) is refused.
    """
    path = os.path.abspath(os.fspath(path))
    clean_stale_partials(path)
    check_not_overlapping(path, inputs, noun)
    if os.path.lexists(path):
        if not overwrite:
            raise RoadedgeError("{}: {} already exists (pass --overwrite to replace it)".format(path, noun))
        cwd = os.path.realpath(os.getcwd())
        if _inside(cwd, os.path.realpath(path)):
            raise RoadedgeError("{}: the {} contains the current folder {}; replacing it would delete the folder "
                                "you are in".format(path, noun, cwd))
    check_writable_folder(os.path.dirname(path), path)
    return path


# --- partial folders and their writers ----------------------------------------------------------------


def _partials_of(path):
    """{token: lock path} of every `.NAME.<token>.partial.lock` beside `path` (NAME exactly, never another name)."""
    parent, base = os.path.split(path)
    head = "." + base + "."
    try:
        names = os.listdir(parent or ".")
    except OSError:
        return {}
    found = {}
    for name in names:
        if name.startswith(head) and name.endswith(LOCK) and _TOKEN.match(name[len(head):-len(LOCK)]):
            found[name[len(head):-len(LOCK)]] = os.path.join(parent, name)
    return found


def clean_stale_partials(path):
    """Remove the partial folders of `path` whose writer is gone; return the partials removed.

    A writer is gone when the flock on its lock file can be taken. Its
    `.partial.old` (the previous `path`, moved aside during the final swap) is
    put back when `path` is missing, else removed. Partials whose writer still
    holds its lock, partials without a lock file (an older roadedge; nobody can
    tell) and anything not named after `path` are left alone.
    """
    import fcntl

    path = os.path.abspath(os.fspath(path))
    removed = []
    for lock in sorted(_partials_of(path).values()):
        try:
            fd = os.open(lock, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue  # just removed by its writer or another cleaner
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # held: the writer is alive (or this file system has no flock: leave it)
            if not os.path.samestat(os.fstat(fd), os.lstat(lock)):
                continue  # replaced meanwhile: not the file we locked
            partial = lock[:-len(LOCK)] + PARTIAL
            old = lock[:-len(LOCK)] + OLD
            if os.path.lexists(old):
                if not os.path.lexists(path):
                    os.replace(old, path)  # killed between the two renames of the swap: the previous output returns
                else:
                    _remove(old)
            _remove(partial)
            os.unlink(lock)
            removed.append(partial)
        except OSError:
            continue  # could not remove it now (permissions, read-only): not this run's business
        finally:
            os.close(fd)
    return removed


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _writer_note():
    return "pid {} on {} since {}\n".format(os.getpid(), socket.gethostname(),
                                           time.strftime("%Y-%m-%dT%H:%M:%S%z")).encode("utf-8")


def _new_partial(path):
    """Create and lock `.NAME.<token>.partial.lock`, then the folder `.NAME.<token>.partial`; (lock fd, folder)."""
    import fcntl

    parent, base = os.path.split(path)
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    while True:
        stem = os.path.join(parent, ".{}.{}".format(base, os.urandom(6).hex()))
        try:
            fd = os.open(stem + LOCK, flags, 0o644)
            break
        except FileExistsError:
            continue
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits only while a cleaner looks at it (it then finds no partial)
        except OSError as err:
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise  # without flock a cleaner cannot take the lock either, so it leaves this partial alone
        os.write(fd, _writer_note())
        os.mkdir(stem + PARTIAL, 0o700)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(stem + LOCK)
        os.close(fd)
        raise
    return fd, stem + PARTIAL


def _release(fd, tmp):
    with contextlib.suppress(OSError):
        os.unlink(tmp[:-len(PARTIAL)] + LOCK)
    os.close(fd)


def write_error(path, tmp, err):
    """The error to show for an OSError met while writing into `tmp` for `path`.

    A full disk, a read-only file system, a quota, or an error naming a file in
    `tmp` becomes one line naming `path` (where the user asked for the output)
    and the reason; anything else (a missing input file, ...) stays as it is.
    """
    named = [os.path.abspath(os.fsdecode(name)) for name in (getattr(err, "filename", None), getattr(err, "filename2", None))
             if isinstance(name, (str, bytes))]
    if err.errno in WRITE_ERRNOS or any(_inside(name, tmp) for name in named):
        return file_error(path, err, "write")
    return err


@contextlib.contextmanager
def staging_dir(path):
    """Yield a new, locked `.NAME.<token>.partial` folder beside `path` (removed afterwards, whatever happens).

    Stale partials of `path` left by a killed writer are removed first. The
    caller moves what it made out of the folder before the block ends.
    """
    path = os.path.abspath(os.fspath(path))
    clean_stale_partials(path)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = _new_partial(path)
    except OSError as err:
        raise file_error(path, err, "write") from None
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        _release(fd, tmp)


@contextlib.contextmanager
def atomic_dir(path, overwrite=False, inputs=()):
    """Yield a temporary sibling folder that becomes `path` only if the block succeeds.

    Checked before any work is done (check_output): an existing `path` needs
    `overwrite`; an output that is, contains or lies inside one of `inputs` is
    refused; stale partials of `path` are removed first (clean_stale_partials).
    A full disk or read-only file system is one RoadedgeError naming `path`
    ("PATH: cannot write (disk full)"), with nothing left behind.
    """
    path = check_output(path, inputs, overwrite)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = _new_partial(path)
    except OSError as err:
        raise file_error(path, err, "write") from None
    old = tmp[:-len(PARTIAL)] + OLD
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # the partial is private; the result should look like any new folder
        if os.path.lexists(path):
            if not overwrite:
                raise RoadedgeError("{}: output folder already exists (pass --overwrite to replace it)".format(path))
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        error = write_error(path, tmp, err)
        if error is err:
            raise
        raise error from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        _release(fd, tmp)


def sha256_file(path):
    """Hex sha256 of a file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
