"""Storage faults for the SQLite queues' tests (the MQTT outbox, the KVS fragment store): a connection that raises a
chosen error from chosen statements, and SQLite's own error objects."""
import sqlite3


class FailingConnection(object):
    """A queue's SQLite connection, raising `error` from statements that start with `when` (while error is set)."""

    def __init__(self, db, when, error):
        self.db, self.when, self.error = db, when, error

    def execute(self, sql, *args):
        if self.error is not None and sql.lstrip().upper().startswith(self.when):
            raise self.error
        return self.db.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.db, name)


def sqlite_error(message, code=None):
    err = sqlite3.OperationalError(message)
    if code is not None:
        err.sqlite_errorcode = code  # Python 3.11+ sets it; older ones have only the message
    return err
