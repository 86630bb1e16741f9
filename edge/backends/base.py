"""The backend contract: what a backend tells the loop and how the loop drives it.

A backend plugin is one file in edge/backends/ defining `TYPE`, `OPTIONS` and
`open(options, context) -> Backend`. A Backend has:

    model                 roadedge.core.model_metadata.ModelInfo: name, sha256, task, labels, input_size,
                          output_format, label_offset, preprocessing. The loop builds its decoder (and the
                          decoder's filter) and its annotator from it (edge/tasks); nothing is guessed.
    requests              inferences the loop may keep in flight (1 for synchronous backends)
    prepare(frame_size)   called before a frame is submitted: get ready for frames of (width, height)
                          (OpenVINO compiles its preprocessing for that size; a no-op elsewhere)
    submit(image)         start inference on a BGR uint8 frame -> a handle; blocks only while every
                          request is busy
    collect(handle, timeout_s=None)  -> (raw output, inference milliseconds), in submission order; the raw
                          output is what the decoder for model.output_format reads. With a timeout, an
                          inference still running after timeout_s raises InferenceStalled (the loop's
                          watchdog then opens the backend again)
    stats()               optional: {counter: number} for the stats message (None: nothing to say)
    close()               release the model; called once, also after errors

A backend that cannot infer one frame but can go on (a remote endpoint out of
reach) raises FrameNotInferred from collect: the loop counts the frame as not
inferred, says `degraded` in its status until a frame goes through again, and
goes on with the next.

The loop calls prepare, submit and collect from one thread. Synchronous
backends (MXNet, awscam) subclass SyncBackend and write only `infer`.
"""
import queue
import threading
import time


class InferenceStalled(Exception):
    """An inference did not return within the watchdog's time."""


class FrameNotInferred(Exception):
    """This frame got no inference (the reason is the message); the backend itself is fine for the next one."""


class Backend(object):
    """Defaults for the optional parts of the contract; subclasses set `model` and write submit and collect."""

    model = None
    requests = 1

    def prepare(self, frame_size):
        """Nothing to prepare by default."""

    def submit(self, image):
        raise NotImplementedError

    def collect(self, handle, timeout_s=None):
        raise NotImplementedError

    def stats(self):
        """No counters by default."""
        return None

    def close(self):
        """Nothing to release by default."""


class SyncBackend(Backend):
    """A backend that infers in one blocking call: submit keeps the frame, collect runs `infer(image) -> raw`.

    With a timeout the call runs on one worker thread of the backend's own (device libraries see one thread), so a
    call that never returns can be given up on."""

    requests = 1
    _worker = None

    def submit(self, image):
        return image

    def collect(self, image, timeout_s=None):
        if not timeout_s:
            started = time.perf_counter()
            raw = self.infer(image)
            return raw, (time.perf_counter() - started) * 1000.0
        if self._worker is None:
            self._worker = _Worker(self.infer)
        return self._worker.call(image, timeout_s)

    def infer(self, image):
        raise NotImplementedError


class _Worker(object):
    """A daemon thread running `function` for the caller, with a time limit on each call; it ends after IDLE_S
    without work and starts again on the next call."""

    IDLE_S = 30.0

    def __init__(self, function):
        self.function, self.jobs = function, queue.Queue()
        self.lock, self.thread = threading.Lock(), None

    def _run(self):
        while True:
            try:
                image, done = self.jobs.get(timeout=self.IDLE_S)
            except queue.Empty:
                with self.lock:
                    if self.jobs.empty():
                        self.thread = None
                        return
                continue
            started = time.perf_counter()
            try:
                done["result"] = (self.function(image), (time.perf_counter() - started) * 1000.0)
            except BaseException as err:  # handed to the caller, raised there
                done["error"] = err
            done["event"].set()

    def call(self, image, timeout_s):
        done = {"event": threading.Event()}
        with self.lock:
            self.jobs.put((image, done))
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="roadedge-sync-backend", daemon=True)
                self.thread.start()
        if not done["event"].wait(timeout_s):
            raise InferenceStalled("inference did not return within {:g} s".format(timeout_s))
        if "error" in done:
            raise done["error"]
        return done["result"]
