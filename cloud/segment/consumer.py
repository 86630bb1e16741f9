"""The segmenting consumer: fragments from GetMedia -> every Nth frame decoded and segmented -> JSON + PNG in S3, the
checkpoint advanced after each fragment is fully written.

Which frames: frame k of the stream, counted from 0 at the point the consumer first started (its --start) and
carried across restarts by the checkpoint (frames_seen), is segmented when k % every == 0.

Restart: the checkpoint names the last fragment done; GetMedia starts again at it (FRAGMENT_NUMBER) and it and
anything before it is skipped. The first fragment after a start may have been half done when the last run
stopped (Ctrl-C stops after the current frame; kill -9 anywhere): its frames whose PNG exists are not written
again (the PNG is written last, so its presence means the frame is complete), and a JSON already there with the
same content (a kill between the JSON and the PNG) is not written again either.
"""
import sys
import time

from cloud.segment.decode import decode_fragment, taken
from cloud.segment.getmedia import later
from cloud.segment.output import CHECKPOINT_SCHEMA, frame_document, frame_keys, save_checkpoint
from roadedge.core.seglabels import index_png_bytes


class Consumer(object):
    def __init__(self, media, segmenter, output, stream, every, checkpoint_path, state=None, log=None):
        self.media, self.segmenter, self.output = media, segmenter, output
        self.stream, self.every, self.checkpoint_path = stream, int(every), checkpoint_path
        self.state = state
        self.log = log or (lambda text: print(text, file=sys.stderr, flush=True))
        self.counts = {"fragments": 0, "frames": 0, "segmented": 0, "skipped": 0}
        self.stopped = False  # stopped by `stop`, maybe in the middle of a fragment

    def selector(self, start_selector):
        if self.state is None:
            return start_selector
        return {"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": self.state["fragment_number"]}

    def run(self, start_selector, until_idle_s=None, max_fragments=None, stop=None):
        """Consume until idle, max_fragments fragments done, or `stop` set (then after the current frame)."""
        first = True
        for fragment in self.media.fragments(self.selector(start_selector), until_idle_s, stop):
            if self.state is not None and not later(fragment.number, self.state["fragment_number"]):
                continue
            if not self._fragment(fragment, check_existing=first, stop=stop):
                self.stopped = True
                return self.counts
            first = False
            if max_fragments and self.counts["fragments"] >= max_fragments:
                break
            if stop is not None and stop.is_set():
                self.stopped = True
                break
        return self.counts

    def _fragment(self, fragment, check_existing, stop):
        """Segment one fragment's taken frames and advance the checkpoint; False if stopped before its end."""
        started = time.monotonic()
        frames = fragment.video_frames()
        before = self.state["frames_seen"] if self.state else 0
        wanted = taken(before, len(frames), self.every)
        done = skipped = 0
        for index, bgr in decode_fragment(fragment, wanted):
            producer_ms = fragment.frame_ms(frames[index])
            json_key, png_key = frame_keys(self.output.prefix, self.stream, fragment.number, producer_ms)
            if check_existing and self.output.exists(png_key):
                skipped += 1
            else:
                result = self.segmenter(bgr)
                size = (bgr.shape[1], bgr.shape[0])
                document = frame_document(self.segmenter, self.stream, fragment, index, producer_ms, size, result,
                                          png_key)
                json_there = check_existing and self.output.read_json(json_key) == document
                self.output.submit_frame(json_key, document, png_key,
                                         index_png_bytes(result.mask, self.segmenter.palette), json_there)
                done += 1
            if stop is not None and stop.is_set() and done + skipped < len(wanted):
                self.output.drain()
                self.counts["segmented"] += done
                self.counts["skipped"] += skipped
                self.log("stopped in fragment {} after {} of its {} frames to segment; the checkpoint stays at the "
                         "fragment before".format(fragment.number, done + skipped, len(wanted)))
                return False
        self.output.drain()  # every frame of the fragment is in S3 before the checkpoint moves past it
        self.state = {"schema": CHECKPOINT_SCHEMA, "stream": self.stream, "bucket": self.output.bucket,
                      "prefix": self.output.prefix, "every": self.every, "fragment_number": str(fragment.number),
                      "producer_timestamp_ms": fragment.producer_ms, "server_timestamp_ms": fragment.server_ms,
                      "frames_seen": before + len(frames), "continuation_token": self.media.continuation_token}
        save_checkpoint(self.checkpoint_path, self.state)
        self.counts["fragments"] += 1
        self.counts["frames"] += len(frames)
        self.counts["segmented"] += done
        self.counts["skipped"] += skipped
        behind = self.media.millis_behind_now
        self.log("fragment {} ({} frames): {} segmented{} in {:.2f} s{}".format(
            fragment.number, len(frames), done, ", {} already in S3".format(skipped) if skipped else "",
            time.monotonic() - started, ", {} ms behind now".format(behind) if behind is not None else ""))
        return True
