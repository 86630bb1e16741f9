"""The consumer's GetMedia client (cloud.segment.getmedia.MediaStream) on the test KVS server: fragments arriving
while it reads, responses that end (the server idles out) continued with the continuation token, nothing twice."""
import threading

import pytest

from cloud.segment.getmedia import MediaStream, selector_for
from roadedge.core.errors import RoadedgeError
from tests.kvs_server import ACCESS_KEY, REGION, SECRET_KEY, KvsServer
from tests.test_kvs_getmedia import T0, put


@pytest.fixture
def kvs(monkeypatch, tmp_path):
    for name, value in (("AWS_ACCESS_KEY_ID", ACCESS_KEY), ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
                        ("AWS_CONFIG_FILE", str(tmp_path / "none")), ("AWS_EC2_METADATA_DISABLED", "true")):
        monkeypatch.setenv(name, value)
    with KvsServer() as server:
        server.create("cam")
        server.get_media_idle_s = 0.2
        yield server


def test_responses_that_end_are_continued_after_the_last_fragment_and_nothing_comes_twice(kvs):
    put(kvs, [T0, T0 + 1000])
    media = MediaStream("cam", REGION, kvs.url, sleep=lambda s: None)
    got, batches = [], [[T0 + 2000, T0 + 3000], [T0 + 4000]]
    for fragment in media.fragments({"StartSelectorType": "EARLIEST"}, until_idle_s=3):
        got.append((fragment.number, fragment.producer_ms, len(fragment.frames)))
        if batches and len(got) in (2, 4):  # more fragments come while the consumer reads, after responses ended
            threading.Timer(0.4, put, (kvs, batches.pop(0))).start()
    stored = kvs.streams["cam"].persisted()
    assert got == [(f.number, T0 + 1000 * k, 3) for k, f in enumerate(stored)] and len(got) == 5
    selectors = [request["StartSelector"] for request in kvs.get_media_requests]
    assert selectors[0] == {"StartSelectorType": "EARLIEST"} and len(selectors) >= 3
    tokens = [s.get("ContinuationToken") for s in selectors[1:]]
    assert all(s["StartSelectorType"] == "CONTINUATION_TOKEN" for s in selectors[1:])
    assert stored[1].number in tokens and stored[3].number in tokens and tokens[-1] == stored[-1].number
    assert media.fragments_read == 5 and media.continuation_token == stored[-1].number


def test_a_stop_event_ends_the_iteration_after_the_fragment_in_hand(kvs):
    put(kvs, [T0, T0 + 1000, T0 + 2000])
    stop = threading.Event()
    got = []
    for fragment in MediaStream("cam", REGION, kvs.url).fragments({"StartSelectorType": "EARLIEST"}, None, stop):
        got.append(fragment.number)
        stop.set()
    assert got == [kvs.streams["cam"].persisted()[0].number]


def test_start_options_become_selectors():
    assert selector_for("now") == {"StartSelectorType": "NOW"}
    assert selector_for("EARLIEST") == {"StartSelectorType": "EARLIEST"}
    assert selector_for("1764547200.5") == {"StartSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": 1764547200.5}
    assert selector_for("2025-12-01T00:00:00Z") == {"StartSelectorType": "PRODUCER_TIMESTAMP",
                                                    "StartTimestamp": 1764547200.0}
    with pytest.raises(RoadedgeError, match="--start 'later'"):
        selector_for("later")
