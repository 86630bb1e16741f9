"""model.tar.gz and prefixes as SageMaker leaves them: damaged archives (cut short, members missing, names that point
outside the archive) are one RoadedgeError naming the archive, never another exception, and nothing is written."""
import io
import json
import os
import tarfile
import tempfile

import pytest
from hypothesis import currently_in_test_context, event, given
from hypothesis import strategies as st

from roadedge.cli import main
from roadedge.core.errors import RoadedgeError
from roadedge.core.mxnet_params import dumps_params
from roadedge.core.sagemaker_model import MXNetModel, load_model
from tests import ssd_models
from tests.test_ssd_deploy import fake_params

TINY = ssd_models.tiny()
SYMBOL = TINY.to_json().encode("utf-8")
PARAMS = dumps_params(fake_params(TINY))
HYPER = json.dumps({"num_classes": "2", "image_shape": "300"}).encode("utf-8")
GOOD = [("model_algo_1-symbol.json", SYMBOL), ("model_algo_1-0000.params", PARAMS), ("hyperparams.json", HYPER)]


def tar_bytes(members, mode="w:gz"):
    """A tar archive of (name, bytes) regular files, or (name, ('symlink'|'hardlink'|'dir', target))."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if isinstance(content, tuple):
                info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "dir": tarfile.DIRTYPE}[content[0]]
                info.linkname = content[1]
                archive.addfile(info)
            else:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def tree(folder):
    return sorted(os.path.relpath(os.path.join(root, name), folder)
                  for root, dirs, files in os.walk(folder) for name in dirs + files)


def load_or_refuse(data, name="model.tar.gz"):
    """load_model on `data` written to a fresh folder: an MXNetModel or one RoadedgeError naming the archive, and the
    folder (and its parent) unchanged: nothing extracted anywhere."""
    with tempfile.TemporaryDirectory() as outer:
        folder = os.path.join(outer, "job")
        os.mkdir(folder)
        path = os.path.join(folder, name)
        with open(path, "wb") as handle:
            handle.write(data)
        before = tree(outer)
        try:
            model = load_model(path)
            assert isinstance(model, MXNetModel) and model.params_source == path + ":model_algo_1-0000.params"
            if currently_in_test_context():
                event("loaded")
            return model
        except RoadedgeError as err:
            assert str(err).startswith(path + ":") and "\n" not in str(err), str(err)
            if currently_in_test_context():
                event("refused")
            return None
        finally:
            assert tree(outer) == before


def test_a_good_archive_loads():
    model = load_or_refuse(tar_bytes(GOOD))
    assert model.name == "model_algo_1" and model.hyperparams["image_shape"] == "300"
    assert len(model.graph.nodes) == len(TINY.nodes) and list(model.params) == list(fake_params(TINY))


@pytest.mark.parametrize("cut", [0.95, 0.6, 0.3, 0.05])
def test_a_truncated_archive_is_one_line_naming_it(tmp_path, capsys, cut):
    data = tar_bytes(GOOD)
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(data[: int(len(data) * cut)])
    assert main(["convert", "deploy", str(archive), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("roadedge: error: {}: truncated or corrupt model.tar.gz (".format(archive)), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("member", ["../model_algo_1-symbol.json", "/etc/model_algo_1-symbol.json", "a/../../x",
                                    "..\\x", "C:x"])
def test_members_that_point_outside_the_archive_are_refused(member):
    with pytest.raises(RoadedgeError, match=r"model.tar.gz: member .* points outside the archive; refused"):
        load_model_from(tar_bytes(GOOD + [(member, b"{}")]))


def test_links_out_of_the_archive_and_ambiguous_names_are_refused():
    with pytest.raises(RoadedgeError, match=r"member 'hyper' -> '../../etc/passwd' points outside the archive"):
        load_model_from(tar_bytes(GOOD + [("hyper", ("symlink", "../../etc/passwd"))]))
    with pytest.raises(RoadedgeError, match=r"two members named model_algo_1-0000.params \(model_algo_1-0000.params and "
                                            r"b/model_algo_1-0000.params\)"):
        load_model_from(tar_bytes(GOOD + [("b/model_algo_1-0000.params", PARAMS)]))
    with pytest.raises(RoadedgeError, match=r'two members named "x\\ny" \("x\\ny" and "a/x\\ny"\); expected one$'):
        load_model_from(tar_bytes(GOOD + [("x\ny", b""), ("a/x\ny", b"")]))


def test_a_symbol_that_is_not_utf8_is_one_line():
    with pytest.raises(RoadedgeError, match=r"model.tar.gz:model_algo_1-symbol.json: not a symbol JSON file"):
        load_model_from(tar_bytes([("model_algo_1-symbol.json", b'{"nodes": "\xff"}')] + GOOD[1:]))


def load_model_from(data):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.tar.gz")
        with open(path, "wb") as handle:
            handle.write(data)
        return load_model(path)


MEMBER_NAMES = st.sampled_from(["model_algo_1-symbol.json", "model_algo_1-0000.params", "hyperparams.json",
                                "model_algo_1-0001.params", "deploy_model_algo_1-symbol.json", "dir/model_algo_1-symbol.json",
                                "../model_algo_1-0000.params", "/abs/hyperparams.json", "a/../../x", "./hyperparams.json",
                                "x", ""]) | st.text(max_size=12)
CONTENTS = st.sampled_from([SYMBOL, PARAMS, HYPER, b"", b"{}", b"[" * 5000, b"\xff\xfe", SYMBOL[:100], PARAMS[:-7]]) | \
    st.binary(max_size=64) | st.tuples(st.sampled_from(["symlink", "hardlink", "dir"]),
                                      st.sampled_from(["../../etc/passwd", "/etc/passwd", "model_algo_1-symbol.json", "x"]))


@st.composite
def archives(draw):
    """Random tar members (some the real ones, some missing, some junk or links or outside names), gzip or plain,
    then maybe cut short or with a byte flipped."""
    members = list(GOOD) if draw(st.booleans()) else []
    if members and draw(st.booleans()):
        del members[draw(st.integers(0, len(members) - 1))]
    members += draw(st.lists(st.tuples(MEMBER_NAMES, CONTENTS), max_size=4))
    data = bytearray(tar_bytes(draw(st.permutations(members)), draw(st.sampled_from(["w:gz", "w"]))))
    damage = draw(st.sampled_from(["none", "cut", "flip"]))
    at = draw(st.integers(0, len(data) - 1))
    if damage == "cut":
        del data[at:]
    elif damage == "flip":
        data[at] ^= draw(st.integers(1, 255))
    return bytes(data)


@given(archives())
def test_property_archives_load_or_are_refused_and_nothing_is_extracted(data):
    load_or_refuse(data)


@given(st.binary(max_size=512))
def test_property_random_bytes_as_model_tar_gz_are_refused(data):
    assert load_or_refuse(data) is None
