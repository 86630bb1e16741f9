"""The one error type the CLI turns into a one-line message and a non-zero exit."""
import errno
import json
import re

OS_REASONS = {errno.ENOSPC: "disk full", errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
              errno.EPERM: "operation not permitted", errno.ENOENT: "no such file or folder",
              errno.ENOTDIR: "a part of the path is not a folder", errno.EISDIR: "is a folder",
              errno.EEXIST: "already exists", errno.EDQUOT: "disk quota exceeded"}


class RoadedgeError(Exception):
    """A user-facing problem: bad input, missing file, failed check.

    `str(err)` is the whole message (it names the file, the field and what was
    expected); `exit_code` is what the CLI exits with.
    """

    exit_code = 2

    def __init__(self, message, exit_code=None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so cleanup (temporary folders, sockets) runs as on Ctrl-C."""


class ValidationFailed(RoadedgeError):
    """Many problems found in one pass; each is printed on its own line."""

    def __init__(self, problems, what="input"):
        self.problems = list(problems)
        n = len(self.problems)
        super().__init__("{} problem{} in {}".format(n, "" if n == 1 else "s", what))


def printable(text):
    """A name from a file (a node, an op, an archive member) as it may appear in a one-line message: unchanged when
    printable, else quoted with escapes ("a\\nb"), so a newline in a name never splits the message."""
    text = str(text)
    return text if text.isprintable() else json.dumps(text)


def os_reason(err):
    """A short reason for an OSError: 'disk full', 'permission denied', ... (errno names, not C library text)."""
    return OS_REASONS.get(getattr(err, "errno", None)) or getattr(err, "strerror", None) or str(err) or type(err).__name__


def file_error(path, err, action="write"):
    """A RoadedgeError for an OSError met while doing `action` on `path`: 'PATH: cannot write (disk full)'."""
    return RoadedgeError("{}: cannot {} ({})".format(path, action, os_reason(err)))


# where in OpenVINO's sources an exception passed through: not a reason a user can act on
_OPENVINO_LOCATION = re.compile(r"^(Exception from \S+:\d+:?|Check '.*' failed at \S+:\d+:?)$")
_OPENVINO_CHECK = re.compile(r"\s*Check '.*' failed at \S+:\d+:?")  # inside a line: "[CPU] Reshape ... Check '...' failed at"
_OPENVINO_CAUGHT = re.compile(r"^Caught exception:\s*")  # an inference's error, re-raised by wait()


def openvino_reason(err, limit=300):
    """The human reason in an OpenVINO exception, on one line.

    OpenVINO's text starts with where it was raised ('Exception from src/inference/src/cpp/core.cpp:84:', "Check
    '...' failed at src/core/...:900:"); those lines are dropped and the rest ('Incorrect weights in bin file!') kept.
    """
    lines = [line.strip() for line in str(err).splitlines()]
    cleaned = [_OPENVINO_CHECK.sub("", _OPENVINO_CAUGHT.sub("", line)).strip() for line in lines]
    kept = [line for line in cleaned if line and not _OPENVINO_LOCATION.match(line)]
    text = " ".join(kept) or " ".join(" ".join(lines).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
