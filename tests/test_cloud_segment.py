"""`roadedge cloud segment` end to end on local parts: the runtime's producer streams real H.264 to the test KVS
server, the consumer reads it back with GetMedia, segments every Nth frame with a real OpenVINO IR (tests/seg_ir.py)
and writes to moto's S3 in server mode. The expected masks come from another path: FFmpeg's own Matroska demuxer
over what the server stored, the same IR on those frames, and numpy's colour rule on the frames before encoding."""
import io
import json

import av
import numpy as np
import pytest
from botocore.credentials import Credentials
from PIL import Image

from edge.kvs.control import StreamEndpoint, make_client
from edge.kvs.encoder import H264Encoder
from edge.kvs.producer import Producer
from edge.kvs.store import FragmentStore
from roadedge.cli import main
from tests.kvs_server import ACCESS_KEY, REGION, SECRET_KEY, KvsServer
from tests.local_aws import use_kvs_credentials, versioned_bucket
from tests.local_aws import versions as bucket_versions
from tests.seg_ir import LABELS, expected_mask, make_seg_ir, scene

FPS, GOP, FRAMES, EVERY = 15, 5, 20, 3  # 4 fragments of 5 frames; frames 0, 3, ..., 18 are segmented
T0 = 1764547200.0
WIDTH, HEIGHT = 160, 96


def original(index):
    """The RGB picture of frame `index` (the seg IR's colour regions, the red patch moving)."""
    return scene(WIDTH, HEIGHT, seed=index)


@pytest.fixture
def aws(monkeypatch, tmp_path):
    """The KVS server with FRAMES frames on stream 'cam', moto's S3 with a versioned bucket, credentials for both."""
    use_kvs_credentials(monkeypatch, tmp_path)
    with versioned_bucket("masks") as (s3, s3_url), KvsServer() as kvs:
        kvs.get_media_idle_s = 0.5
        producer = Producer(FragmentStore(str(tmp_path / "store.sqlite"), 64 << 20, 3600),
                            StreamEndpoint(make_client(REGION, kvs.url), "cam"), Credentials(ACCESS_KEY, SECRET_KEY),
                            REGION, "cam", H264Encoder(WIDTH, HEIGHT, FPS, GOP, 400000), queue_frames=1000).start()
        for index in range(FRAMES):
            assert producer.submit(np.ascontiguousarray(original(index)[:, :, ::-1]), T0 + index / FPS)
        assert producer.close(drain_timeout_s=30) == 0
        assert len(kvs.streams["cam"].persisted()) == FRAMES // GOP
        yield kvs, s3, s3_url


def ffmpeg_frames(kvs):
    """[(producer ms, RGB)] of every frame the server stored, demuxed and decoded by FFmpeg (not the project's code)."""
    fragments = kvs.streams["cam"].persisted()
    data = fragments[0].header + b"".join(bytes(f.raw) for f in fragments)
    with av.open(io.BytesIO(data), format="matroska") as container:
        stream = container.streams.video[0]
        return [(int(frame.pts * stream.time_base * 1000), frame.to_ndarray(format="rgb24"))
                for frame in container.decode(stream)]


def versions(s3):
    """{key: number of versions} in the bucket `masks`."""
    return bucket_versions(s3, "masks")


def segment(kvs, s3_url, xml, checkpoint, *extra):
    return main(["cloud", "segment", "--stream", "cam", "--model", xml, "--bucket", "s3://masks/drive1",
                 "--every", str(EVERY), "--start", "earliest", "--checkpoint", str(checkpoint), "--region", REGION,
                 "--kvs-endpoint-url", kvs.url, "--s3-endpoint-url", s3_url, "--until-idle", "1"] + list(extra))


def ir_masks(xml, frames):
    """The same IR, through the runtime's backend and task, on FFmpeg's frames."""
    from edge.backends import openvino
    from edge.plugins import checked, with_defaults
    from edge.tasks import segmentation

    backend = openvino.open(checked(openvino.OPTIONS, {"model": xml}, "test"))
    decoder = segmentation.decoder(backend.model, with_defaults(segmentation.OPTIONS, {}))

    class Size(object):
        frame_size = (WIDTH, HEIGHT)

    return [decoder(backend.infer(np.ascontiguousarray(rgb[:, :, ::-1])), Size()).mask for _, rgb in frames]


def test_every_nth_frame_gets_its_json_then_png_matching_the_ir_and_a_restart_writes_nothing_twice(aws, tmp_path):
    kvs, s3, s3_url = aws
    xml = make_seg_ir(str(tmp_path / "model"))
    checkpoint = tmp_path / "state" / "cam.json"
    assert segment(kvs, s3_url, xml, checkpoint, "--fragments", "2") == 0
    state = json.loads(checkpoint.read_text())
    stored = kvs.streams["cam"].persisted()
    assert (state["fragment_number"], state["frames_seen"]) == (stored[1].number, 10)
    assert len(versions(s3)) == 2 * 4  # frames 0, 3, 6, 9: a JSON and a PNG each
    assert segment(kvs, s3_url, xml, checkpoint) == 0  # the restart: after fragment 2, to the stream's end
    first_selectors = [request["StartSelector"] for request in kvs.get_media_requests]
    assert first_selectors[0] == {"StartSelectorType": "EARLIEST"}
    assert {"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": stored[1].number} in first_selectors[1:]
    assert json.loads(checkpoint.read_text())["fragment_number"] == stored[-1].number
    assert segment(kvs, s3_url, xml, checkpoint) == 0  # nothing new: nothing written

    frames = ffmpeg_frames(kvs)
    assert len(frames) == FRAMES
    taken = list(range(0, FRAMES, EVERY))
    fragment_of = {index: stored[index // GOP].number for index in range(FRAMES)}
    expected_keys = set()
    for index in taken:
        stem = "drive1/cam/{}/{}".format(fragment_of[index], frames[index][0])
        expected_keys |= {stem + ".json", stem + ".png"}
    assert versions(s3) == {key: 1 for key in expected_keys}  # every key once: nothing was written twice
    masks = ir_masks(xml, [frames[i] for i in taken])
    palette = json.load(open(xml[:-4] + ".json"))["palette"]
    for index, want in zip(taken, masks):
        stem = "drive1/cam/{}/{}".format(fragment_of[index], frames[index][0])
        doc = json.loads(s3.get_object(Bucket="masks", Key=stem + ".json")["Body"].read())
        png = Image.open(io.BytesIO(s3.get_object(Bucket="masks", Key=stem + ".png")["Body"].read()))
        mask = np.array(png)
        assert png.mode == "P" and mask.shape == (HEIGHT, WIDTH)
        np.testing.assert_array_equal(mask, want)  # the same IR on FFmpeg's decoding of the same frame
        assert png.getpalette()[:3 * len(palette)] == [v for colour in palette for v in colour]
        truth = expected_mask(original(index))  # numpy's rule on the picture before H.264
        assert (mask == truth).mean() > 0.98, (index, (mask == truth).mean())
        counts = np.bincount(mask.ravel(), minlength=len(LABELS)) / mask.size
        assert doc["segmentation"]["shares"] == pytest.approx(
            {LABELS[k]: counts[k] for k in range(len(LABELS)) if counts[k] > 0}, abs=1e-6)
        road = np.isin(mask, [LABELS.index("road"), LABELS.index("lane_marking")])
        assert doc["segmentation"]["drivable_share"] == pytest.approx(road.mean(), abs=1e-6)
        assert {k: doc[k] for k in ("schema", "stream", "fragment_number", "producer_timestamp_ms", "mask_key")} == {
            "schema": "roadedge.cloud.mask/1", "stream": "cam", "fragment_number": fragment_of[index],
            "producer_timestamp_ms": frames[index][0], "mask_key": stem + ".png"}
        assert doc["frame"] == {"index": index % GOP, "width": WIDTH, "height": HEIGHT}
        assert doc["server_timestamp_ms"] == stored[index // GOP].server_ms
        assert doc["model"] == {"name": "colour-seg", "source": "ir " + xml}
        assert doc["labels"] == LABELS and doc["road_classes"] == ["road", "lane_marking"]


def test_every_nth_frame_is_counted_across_fragments():
    from cloud.segment.decode import taken

    picks, seen = [], 0
    for count in (5, 5, 3, 7):  # fragments of different lengths
        picks += [seen + index for index in taken(seen, count, 4)]
        seen += count
    assert picks == [0, 4, 8, 12, 16]
    assert taken(0, 3, 1) == [0, 1, 2] and taken(7, 2, 10) == []
