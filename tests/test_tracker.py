"""The IoU tracker: per-frame detections -> a few damage events per physical damage, by timestamps, at any FPS."""
import random

import pytest

from edge.processing.decoders import Detection
from edge.processing.tracker import IouTracker, iou

T0 = 1795248900.0


def pothole(score, box=(0.40, 0.60, 0.50, 0.70)):
    return Detection(3, "D40", score, box)


def run(tracker, frames, fps=15.0, start=0):
    """Feed [detections per frame]; -> (all events, timestamp after the last frame)."""
    events = []
    for offset, detections in enumerate(frames):
        index = start + offset
        events.extend(tracker.update(detections, index, T0 + index / fps))
    return events, T0 + (start + len(frames)) / fps


def kinds(events):
    return [e["type"] for e in events]


def test_iou():
    assert iou((0, 0, 1, 1), (0, 0, 1, 1)) == 1.0
    assert iou((0, 0, 1, 1), (1, 1, 2, 2)) == 0.0
    assert iou((0, 0, 2, 1), (1, 0, 3, 1)) == pytest.approx(1 / 3)
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_a_pothole_seen_for_30_frames_is_one_new_and_one_end_with_its_best_frame():
    tracker = IouTracker()
    scores = [0.55 + 0.01 * i for i in range(18)] + [0.70 - 0.01 * i for i in range(12)]  # best at frame 17
    frames = [[pothole(s, (0.40, 0.60 + 0.002 * i, 0.50 + 0.001 * i, 0.70 + 0.003 * i))] for i, s in enumerate(scores)]
    events, _ = run(tracker, frames + [[]] * 30)  # then two seconds without it
    assert kinds(events) == ["new", "end"]
    new, end = events
    assert new["track_id"] == end["track_id"] == 1
    assert new["label"] == end["label"] == "D40"
    assert new["hits"] == 2 and new["first_frame"] == 0 and new["last_frame"] == 1
    assert end["hits"] == 30
    assert end["score"] == pytest.approx(max(scores)) and end["best_frame"] == 17
    assert end["box"] == pytest.approx([0.40, 0.60 + 0.034, 0.50 + 0.017, 0.70 + 0.051])
    assert end["first_seen"] == T0 and end["last_seen"] == pytest.approx(T0 + 29 / 15.0)
    assert (end["first_frame"], end["last_frame"]) == (0, 29)
    assert set(end) == {"type", "track_id", "label", "score", "box", "best_frame", "first_seen", "last_seen",
                        "first_frame", "last_frame", "hits", "ground"}
    assert end["ground"] is None  # detections without a place (no GPS)
    assert tracker.open_tracks() == []


def test_updates_only_when_the_best_score_improves_and_at_most_every_interval():
    tracker = IouTracker(update_interval_s=1.0)
    rising = [[pothole(0.50 + 0.004 * i)] for i in range(90)]  # 6 s at 15 fps, improving every frame
    flat = [[pothole(0.60)] for _ in range(90)]  # 6 s more, never better than the best
    events, end_time = run(tracker, rising + flat)
    assert kinds(events).count("new") == 1
    updates = [e for e in events if e["type"] == "update"]
    assert 4 <= len(updates) <= 7  # ~ once a second while improving, then at most one for the last gains
    assert all(u["best_frame"] < 90 for u in updates)
    assert all(u["last_frame"] <= 90 + 15 for u in updates)  # nothing once the best stopped improving
    gaps = [b["last_seen"] - a["last_seen"] for a, b in zip(updates, updates[1:])]
    assert min(gaps) >= 1.0
    assert [u["score"] for u in updates] == sorted(u["score"] for u in updates)
    events = tracker.flush(end_time)
    assert kinds(events) == ["end"] and events[0]["hits"] == 180


def test_two_damages_of_different_labels_at_the_same_place_are_separate_tracks():
    tracker = IouTracker()
    box = (0.2, 0.5, 0.4, 0.7)
    frames = [[Detection(3, "D40", 0.8, box), Detection(2, "D20", 0.6, box)] for _ in range(10)]
    events, end_time = run(tracker, frames)
    news = [e for e in events if e["type"] == "new"]
    assert sorted(e["label"] for e in news) == ["D20", "D40"]
    assert len({e["track_id"] for e in news}) == 2
    ends = tracker.flush(end_time)
    assert sorted((e["label"], e["hits"]) for e in ends) == [("D20", 10), ("D40", 10)]


def test_a_one_frame_false_positive_gives_no_event():
    tracker = IouTracker(min_hits=2)
    events, end_time = run(tracker, [[], [pothole(0.95)], [], [], []])
    assert events == []
    assert tracker.best_frames == {1: 1}  # still tentative, within max_age_s
    events, end_time = run(tracker, [[]] * 30, start=5)
    assert events == [] and tracker.open_tracks() == []
    assert tracker.flush(end_time) == []


def test_flush_ends_the_open_confirmed_tracks_only():
    tracker = IouTracker()
    events, end_time = run(tracker, [[pothole(0.8), Detection(0, "D00", 0.7, (0.7, 0.1, 0.8, 0.3))]] * 3
                           + [[pothole(0.8), Detection(5, "D44", 0.9, (0.0, 0.9, 0.1, 1.0))]])
    assert sorted(e["label"] for e in events) == ["D00", "D40"]  # the D44 seen once is tentative
    ends = tracker.flush(end_time)
    assert sorted((e["type"], e["label"], e["hits"]) for e in ends) == [("end", "D00", 3), ("end", "D40", 4)]
    assert tracker.open_tracks() == [] and tracker.flush(end_time) == []


def test_jittering_boxes_and_a_missed_frame_keep_one_track():
    rng = random.Random(7)
    tracker = IouTracker()
    frames = []
    for i in range(60):
        j = [rng.uniform(-0.012, 0.012) for _ in range(4)]
        box = (0.30 + j[0], 0.55 + j[1], 0.42 + j[2], 0.65 + j[3])
        frames.append([] if i in (20, 21, 40) else [pothole(rng.uniform(0.5, 0.9), box)])
    events, end_time = run(tracker, frames)
    assert kinds(events) == ["new"]
    assert [t[0] for t in tracker.open_tracks()] == [1]
    assert kinds(tracker.flush(end_time)) == ["end"]


def test_a_damage_approaching_faster_each_frame_stays_one_track():
    """Dashcam view: the box moves down and grows, by more each frame; the track's motion predicts it."""
    tracker = IouTracker()
    frames, top = [], 0.40
    for i in range(12):
        height = 0.06 + 0.01 * i
        frames.append([pothole(0.8, (0.45 - height / 2, top, 0.45 + height / 2, top + height))])
        top += 0.02 + 0.008 * i
    events, end_time = run(tracker, frames, fps=5.0)
    assert kinds(events) == ["new"]
    assert kinds(tracker.flush(end_time)) == ["end"]


def test_end_uses_time_not_frames():
    for fps in (5.0, 30.0):
        tracker = IouTracker(max_age_s=1.0)
        gap = int(0.8 * fps)  # unseen for 0.8 s: still the same track
        seen = [[pothole(0.8)]] * 3
        events, _ = run(tracker, seen + [[]] * gap + seen, fps=fps)
        assert kinds(events) == ["new"], fps
        events, _ = run(tracker, [[]] * int(1.2 * fps) + [[pothole(0.8)]], fps=fps, start=6 + gap)
        assert kinds(events) == ["end"] and events[0]["hits"] == 6, fps


def test_max_missed_frames():
    tracker = IouTracker(max_age_s=60.0, max_missed=3)
    events, _ = run(tracker, [[pothole(0.8)]] * 2 + [[]] * 2 + [[pothole(0.8)]] + [[]] * 3)
    assert kinds(events) == ["new", "end"] and events[1]["hits"] == 3


def test_best_changed_names_the_tracks_whose_best_frame_is_this_one():
    tracker = IouTracker()
    assert tracker.update([pothole(0.6)], 0, T0) == [] and tracker.best_changed == [1]  # tentative tracks too
    tracker.update([pothole(0.5)], 1, T0 + 0.1)
    assert tracker.best_changed == [] and tracker.best_frames == {1: 0}
    tracker.update([pothole(0.7), Detection(0, "D00", 0.9, (0.0, 0.0, 0.1, 0.1))], 2, T0 + 0.2)
    assert sorted(tracker.best_changed) == [1, 2] and tracker.best_frames == {1: 2, 2: 2}


def test_greedy_matching_prefers_the_best_overlap():
    tracker = IouTracker(min_hits=1)
    a, b = (0.10, 0.10, 0.30, 0.30), (0.32, 0.10, 0.52, 0.30)
    new = tracker.update([pothole(0.8, a), pothole(0.7, b)], 0, T0)
    ids = {e["box"][0]: e["track_id"] for e in new}
    tracker.update([pothole(0.9, (0.33, 0.10, 0.53, 0.30)), pothole(0.9, (0.11, 0.10, 0.31, 0.30))], 1, T0 + 0.1)
    assert tracker.best_frames == {ids[0.10]: 1, ids[0.32]: 1}
    ends = tracker.flush(T0 + 0.2)
    assert {e["track_id"]: round(e["box"][0], 2) for e in ends} == {ids[0.10]: 0.11, ids[0.32]: 0.33}


def test_bad_arguments():
    with pytest.raises(ValueError):
        IouTracker(iou=0)
    with pytest.raises(ValueError):
        IouTracker(min_hits=0)


def test_an_event_carries_the_place_it_was_seen_from_nearest():
    tracker = IouTracker(min_hits=2, max_age_s=1.0)
    events = []
    for i, (score, range_m) in enumerate([(0.55, 18.0), (0.9, 12.0), (0.6, 7.5), (0.7, None), (0.65, 9.0)]):
        place = None if range_m is None else {"lat": 52.5 + i * 1e-5, "lon": 13.4, "range_m": range_m}
        events += tracker.update([Detection(3, "D40", score, (0.4, 0.6, 0.5, 0.7), place)], i, T0 + i / 15.0)
    events += tracker.flush(T0 + 1.0)
    assert [e["type"] for e in events] == ["new", "end"]
    assert events[0]["ground"]["range_m"] == 12.0  # the nearest by the time of `new`
    assert events[1]["ground"]["range_m"] == 7.5 and events[1]["ground"]["lat"] == pytest.approx(52.5 + 2e-5)
    assert events[1]["best_frame"] == 1  # the best score's frame is another matter (the snapshot)
