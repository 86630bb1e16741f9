"""The one error type the CLI turns into a one-line message and a non-zero exit."""


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
