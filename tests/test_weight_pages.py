"""The mapped weights' pages OpenVINO reads while compiling are given back, and nothing else changes.

Each measurement runs in its own process: what a process has mapped and resident is the thing measured.
"""
import json
import os
import subprocess
import sys

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

from roadedge.core.weight_pages import MADV_DONTNEED, MADV_PAGEOUT, Mapping, WeightPages, file_mappings

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/maps and madvise are Linux's")

MAPS = """\
55d0c0000000-55d0c0021000 r--p 00000000 fe:00 131 /usr/bin/python3.11
7f00aa000000-7f00b0800000 r--s 00000000 fe:00 4242 /models/ir 300/model.bin
7f00b0800000-7f00b0900000 rw-p 00000000 00:00 0
7f00b0900000-7f00b0a00000 rw-s 00000000 fe:00 99 /cache/abc.blob
7f00b0a00000-7f00b0b00000 r--s 00000000 fe:00 98 /cache/old.blob (deleted)
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
"""


def test_the_maps_text_is_read_with_paths_that_hold_spaces():
    mappings = file_mappings(MAPS)
    assert [m.path for m in mappings] == ["/usr/bin/python3.11", "/models/ir 300/model.bin", "/cache/abc.blob",
                                          "/cache/old.blob (deleted)"]
    assert mappings[1] == Mapping(0x7F00AA000000, 0x7F00B0800000, "r--s", "/models/ir 300/model.bin")


def test_only_read_only_mappings_of_the_named_files_are_advised():
    pages = WeightPages(files=["/models/ir 300/model.bin"], folders=["/cache"], pinned=[0x7F00AA000010])
    wanted = [m.path for m in file_mappings(MAPS) if pages.wanted(m)]
    assert wanted == ["/models/ir 300/model.bin", "/cache/old.blob (deleted)"]  # not the writable blob, not python


def test_dontneed_only_where_the_caller_keeps_the_mapping_and_it_is_shared():
    bin_mapping, blob_mapping = file_mappings(MAPS)[1], file_mappings(MAPS)[3]
    pinned = WeightPages(files=["/models/ir 300/model.bin"], pinned=[bin_mapping.start + 4096])
    assert pinned.advice(bin_mapping) == MADV_DONTNEED
    assert pinned.advice(blob_mapping) == MADV_PAGEOUT  # OpenVINO's to unmap: the advice that never discards data
    assert WeightPages(files=["x"]).advice(bin_mapping) == MADV_PAGEOUT
    private = bin_mapping._replace(perms="r--p")  # pages of a private mapping may have been written before
    assert pinned.advice(private) == MADV_PAGEOUT


@pytest.fixture(scope="module")
def heavy_ir(tmp_path_factory):
    """An IR with 9.4 MB of convolution weights (512 x 512 x 3 x 3, f32)."""
    rng = np.random.default_rng(5)
    data = ops.parameter([1, 512, 6, 6], np.float32, name="data")
    weights = ops.constant((rng.standard_normal((512, 512, 3, 3)) * 0.02).astype(np.float32))
    out = ops.relu(ops.convolution(data, weights, [1, 1], [1, 1], [1, 1], [1, 1]))
    path = str(tmp_path_factory.mktemp("heavy") / "heavy.xml")
    ov.save_model(ov.Model([ops.result(out)], [data], "heavy"), path, compress_to_fp16=False)
    return path


PROBE = r"""
import json, sys
import numpy as np, openvino as ov
from roadedge.core.weight_pages import WeightPages, constant_address, file_mappings
xml, cache, release, from_path = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4] == "1"
weights = xml[:-4] + ".bin"
core = ov.Core()
model = xml if from_path else core.read_model(xml)
pinned = [] if from_path else [constant_address(model)]
config = {"INFERENCE_PRECISION_HINT": "f32"}
if cache:
    config["CACHE_DIR"] = cache
pages = WeightPages(files=[weights], folders=[cache] if cache else [], pinned=pinned) if release else WeightPages()
with pages:
    compiled = core.compile_model(model, "CPU", config)

def resident_kb(path_test):
    total, current = 0, None
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and not fields[0].endswith(":"):
                current = fields[5] if len(fields) > 5 else ""
            elif fields[0] == "Rss:" and path_test(current or ""):
                total += int(fields[1])
    return total

image = np.random.default_rng(0).standard_normal((1, 512, 6, 6)).astype(np.float32)
out = compiled({0: image})[0]
print(json.dumps({"bin_kb": resident_kb(lambda p: p == weights),
                  "blob_kb": resident_kb(lambda p: bool(cache) and p.startswith(cache)),
                  "mapped": sorted({m.path for m in file_mappings(open("/proc/self/maps").read())
                                    if m.path == weights or (cache and m.path.startswith(cache))}),
                  "sum": float(np.abs(out).sum()), "first": out.reshape(-1)[:64].tolist()}))
"""


def _probe(xml, cache="", release=True, from_path=False):
    done = subprocess.run([sys.executable, "-c", PROBE, xml, cache, "1" if release else "0", "1" if from_path else "0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_read_models_weights_are_not_left_resident(heavy_ir):
    kept = _probe(heavy_ir, release=False)
    given_back = _probe(heavy_ir, release=True)
    size_kb = os.path.getsize(heavy_ir[:-4] + ".bin") // 1024
    assert kept["mapped"] == given_back["mapped"] == [heavy_ir[:-4] + ".bin"]  # the compiled model keeps the mapping
    assert kept["bin_kb"] > 0.9 * size_kb  # compiling read every weight, and the pages stayed
    assert given_back["bin_kb"] < 0.05 * size_kb
    assert given_back["first"] == kept["first"] and given_back["sum"] == kept["sum"]  # the same numbers, exactly


def test_a_cached_blob_is_not_left_resident(heavy_ir, tmp_path):
    cache = str(tmp_path / "cache")
    cold = _probe(heavy_ir, cache, release=True, from_path=True)
    assert os.listdir(cache), "the first compile wrote no blob"
    warm_kept = _probe(heavy_ir, cache, release=False, from_path=True)
    warm = _probe(heavy_ir, cache, release=True, from_path=True)
    size_kb = os.path.getsize(heavy_ir[:-4] + ".bin") // 1024
    assert any(path.startswith(cache) for path in warm_kept["mapped"])  # a cache hit maps the blob, not the .bin
    assert warm_kept["blob_kb"] > 0.9 * size_kb
    assert warm["blob_kb"] < 0.05 * size_kb and cold["bin_kb"] < 0.05 * size_kb
    assert warm["first"] == warm_kept["first"] == cold["first"]


@pytest.mark.parametrize("cached, release", [(False, True), (True, True), (False, False)])
def test_the_backend_gives_back_its_weights_and_cache_while_compiling(tmp_path, cached, release):
    """What the OpenVINO backend hands WeightPages: its .bin, its cache folder, and the read model's mapping as pinned
    when it compiles that model (with a cache it compiles the path, and nothing of OpenVINO's is pinned)."""
    import shutil

    from edge.backends import openvino as openvino_backend

    for suffix in (".xml", ".bin", ".json"):
        shutil.copy(openvino_backend.BUNDLED_MODEL[:-4] + suffix, str(tmp_path / ("road" + suffix)))
    chosen = {name: option.default for name, option in openvino_backend.OPTIONS.items()}
    chosen.update(model=str(tmp_path / "road.xml"), cache_dir=str(tmp_path / "cache") if cached else "",
                  release_weight_pages=release)
    backend = openvino_backend.open(chosen)
    used = []
    made = backend._weight_pages
    backend._weight_pages = lambda model: used.append(made(model)) or used[-1]
    detections = backend.infer(np.zeros((360, 640, 3), np.uint8))
    assert detections.shape[-1] == 7
    (pages,) = used
    if not release:
        assert not pages.files and not pages.folders and pages.thread is None
        return
    weights = os.path.realpath(str(tmp_path / "road.bin"))
    assert pages.files == {weights}
    assert pages.folders == ((os.path.join(os.path.realpath(str(tmp_path / "cache")), ""),) if cached else ())
    if cached:
        assert pages.pinned == ()
    else:
        (address,) = pages.pinned  # inside a mapping of the .bin that the read model holds
        assert any(m.start <= address < m.end and m.path == weights for m in file_mappings(open("/proc/self/maps").read()))
