"""The OpenVINO backend on damaged or mismatched models: one line naming the file and what was expected, exit 2,
OpenVINO's human reason rather than its source location, no traceback."""
import shutil

import pytest

from edge.backends import openvino as openvino_backend
from edge.backends.openvino import BUNDLED_MODEL
from roadedge.cli import main
from roadedge.core.errors import RoadedgeError, openvino_reason


def options(**values):
    chosen = {name: option.default for name, option in openvino_backend.OPTIONS.items()}
    chosen.update(values)
    return chosen


@pytest.fixture
def model_copy(tmp_path):
    """The bundled IR (.xml, .bin, .json) copied to tmp_path/road.*; returns the .xml path."""
    for suffix in (".xml", ".bin", ".json"):
        shutil.copy(BUNDLED_MODEL[:-4] + suffix, str(tmp_path / ("road" + suffix)))
    return tmp_path / "road.xml"


def run_error(capsys, xml):
    """`roadedge run --model xml`: exit 2 and the one line it printed."""
    assert main(["run", "--model", str(xml), "--no-preview", "--frames", "1", "--no-realtime"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err
    assert lines[0].startswith("roadedge: error: ")
    return lines[0]


@pytest.mark.parametrize("text,reason", [
    ("Exception from src/inference/src/cpp/core.cpp:84:\nCheck 'is_valid_weights_range(m_weights_provider->size(), "
     "offset, size)' failed at src/core/xml_util/src/xml_deserialize_util.cpp:900:\nIncorrect weights in bin file!\n\n",
     "Incorrect weights in bin file!"),
    ("Exception from src/inference/src/cpp/core.cpp:84:\nException from src/inference/src/model_reader.cpp:148:\n"
     'Unable to read the model: "g.onnx" Please check that model format: ".onnx" is supported\n\n',
     'Unable to read the model: "g.onnx" Please check that model format: ".onnx" is supported'),
    ("Exception from src/inference/src/cpp/core.cpp:84:\nCheck 'util::file_exists(path / \"saved_model.pb\")' failed at "
     "src/frontends/tensorflow/src/graph_iterator_saved_model.cpp:34:\nFrontEnd API failed with GeneralFailure:\n"
     'Could not open the file: "/tmp/saved_model.pb"\n',
     'FrontEnd API failed with GeneralFailure: Could not open the file: "/tmp/saved_model.pb"'),
    ("Exception from src/inference/src/cpp/core.cpp:84:", "Exception from src/inference/src/cpp/core.cpp:84:"),
    ("", "RuntimeError"),
])
def test_openvino_reason_skips_source_locations_and_keeps_the_human_lines(text, reason):
    assert openvino_reason(RuntimeError(text)) == reason


def test_run_with_a_truncated_bin_names_the_bin(model_copy, capsys):
    weights = model_copy.with_suffix(".bin")
    size = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[:100000])
    line = run_error(capsys, model_copy)
    assert line.endswith("{}: truncated IR weights: 100000 bytes, but road.xml reads up to byte {} (copy the .bin "
                         "again)".format(weights, size)), line


def test_run_without_the_bin_names_it(model_copy, capsys):
    model_copy.with_suffix(".bin").unlink()
    line = run_error(capsys, model_copy)
    assert "{}: cannot read the IR's weights (no such file or folder); road.xml needs".format(
        model_copy.with_suffix(".bin")) in line, line


def test_run_with_a_cut_xml_gives_openvinos_reason_not_its_source_location(model_copy, capsys):
    model_copy.write_text(model_copy.read_text()[:5000])
    line = run_error(capsys, model_copy)
    assert "backend.model {}: OpenVINO cannot read it (Error parsing element attribute at offset".format(model_copy) in line
    assert "Exception from" not in line and ".cpp" not in line, line


def test_a_device_openvino_does_not_know_is_one_line_with_the_reason(model_copy):
    backend = openvino_backend.open(options(model=str(model_copy), device="NOSUCHDEVICE"))
    with pytest.raises(RoadedgeError) as info:
        backend.prepare((640, 360))
    assert str(info.value) == ("backend.device NOSUCHDEVICE: OpenVINO cannot compile {} there (Device with "
                               "\"NOSUCHDEVICE\" name is not registered in the OpenVINO Runtime)".format(model_copy))
