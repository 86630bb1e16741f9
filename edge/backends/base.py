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
    collect(handle)       -> (raw output, inference milliseconds), in submission order; the raw output is
                          what the decoder for model.output_format reads
    close()               release the model; called once, also after errors

The loop calls prepare, submit and collect from one thread. Synchronous
backends (MXNet, awscam) subclass SyncBackend and write only `infer`.
"""
import time


class Backend(object):
    """Defaults for the optional parts of the contract; subclasses set `model` and write submit and collect."""

    model = None
    requests = 1

    def prepare(self, frame_size):
        """Nothing to prepare by default."""

    def submit(self, image):
        raise NotImplementedError

    def collect(self, handle):
        raise NotImplementedError

    def close(self):
        """Nothing to release by default."""


class SyncBackend(Backend):
    """A backend that infers in one blocking call: submit keeps the frame, collect runs `infer(image) -> raw`."""

    requests = 1

    def submit(self, image):
        return image

    def collect(self, image):
        started = time.perf_counter()
        raw = self.infer(image)
        return raw, (time.perf_counter() - started) * 1000.0

    def infer(self, image):
        raise NotImplementedError
