"""Two passes over one rendered road: the registry holds each damage once, seen on both passes, where it lies.

The labelled boxes go through the runtime's chain after the detector (places on the road, the tracker, events,
the registry): tests/drive_replay.py. The demo detector's own figures are benchmarks/bench_defects.py's.
"""
import pytest

from edge.defects.registry import DefectRegistry
from edge.gps import geo
from roadedge import cli
from tests.drive_replay import compare, placeable, read_drive, replay_labels


@pytest.fixture(scope="module")
def passes(tmp_path_factory):
    """Road seed 21 rendered twice at 320x180, 10 FPS, 24 s (288 m): seeds 1 and 2 light and mount it otherwise."""
    root = tmp_path_factory.mktemp("passes")
    folders = []
    for seed in (1, 2):
        folder = root / "pass{}".format(seed)
        assert cli.main(["synth", "--video", str(folder), "--seed", str(seed), "--road-seed", "21", "--duration", "24",
                         "--fps", "10", "--size", "320x180"]) == 0
        folders.append(str(folder))
    return folders


def test_two_passes_make_one_defect_per_damage_seen_on_both(passes, tmp_path):
    with DefectRegistry(str(tmp_path / "defects.sqlite")) as registry:
        for number, folder in enumerate(passes):
            events = replay_labels(folder, registry, boot_id="pass{}".format(number))
            assert events and all(e.get("position") for e in events)
        defects = registry.defects()
    damages, per_pass = placeable(passes)
    result = compare(defects, damages)
    both = per_pass[0] & per_pass[1]
    assert len(damages) >= 5 and len(both) >= 4
    assert abs(result["matched_damages"] - len(damages)) <= 0.1 * len(damages), result  # within +-10 %
    assert not [d for d in result["extra"] if geo.distance(d["lat"], d["lon"], *read_drive(passes[0])[0]["start"]) > 20.0]
    assert set(result["defects_per_damage"]) == {1}, result  # never two defects for one damage
    assert [result["passes_of"][t] for t in sorted(both)] == [2] * len(both), result  # placed on both: seen on both
    assert result["median_error_m"] < 1.5, result
    for defect in defects:
        assert defect["sightings"] >= defect["passes"] >= 1 and defect["severity"] in ("low", "medium", "high", None)


def test_a_third_pass_on_another_road_adds_its_own_defects(passes, tmp_path_factory, tmp_path):
    other = tmp_path_factory.mktemp("other") / "road"
    assert cli.main(["synth", "--video", str(other), "--seed", "3", "--road-seed", "22", "--duration", "6", "--fps", "10",
                     "--size", "320x180", "--start", "52.52,13.40"]) == 0  # 2 km away
    with DefectRegistry(str(tmp_path / "defects.sqlite")) as registry:
        replay_labels(passes[0], registry, boot_id="a")
        first = len(registry.defects())
        replay_labels(str(other), registry, boot_id="b")
        defects = registry.defects()
    assert first >= 4 and len(defects) > first
    assert all(d["passes"] == 1 for d in defects)  # nothing of the other road joined this one's defects
