"""What a `roadedge run` process loads: the plugin registry imports every plugin module, so network, database and HTTP
libraries wait for the plugin that opens them, and OpenVINO comes without its model converter. Each check runs in a
fresh interpreter (this test process has imported everything already)."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _loaded_after(script):
    """The sorted module names a fresh interpreter has loaded after running `script` (which prints nothing)."""
    code = script + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert result.returncode == 0, result.stderr.decode()
    return set(json.loads(result.stdout.decode().splitlines()[-1]))


def test_the_plugin_registry_loads_no_tls_http_server_or_sqlite():
    loaded = _loaded_after("from edge import plugins\nfor kind in ('source', 'backend', 'sink'):\n"
                           "    assert plugins.plugins(kind)\n")
    assert {"edge.sinks.mqtt", "edge.sinks.mjpeg", "edge.sinks.defects", "edge.sinks.s3"} <= loaded
    assert not {"ssl", "http.server", "http.client", "sqlite3", "edge.preview_server", "edge.outbox"} & loaded


def test_opening_a_sink_loads_what_it_needs(tmp_path):
    script = ("from edge import plugins\n"
              "sink = plugins.plugin('sink', 'mjpeg').open({'port': 0}, {})\n"
              "sink.close()\n"
              "registry = plugins.plugin('sink', 'defects').open({'path': %r}, {'device': 'd'})\n"
              "registry.close()\n" % str(tmp_path / "defects.sqlite"))
    assert {"http.server", "edge.preview_server", "sqlite3", "edge.defects.registry"} <= _loaded_after(script)


def test_openvino_comes_without_its_converter_until_convert_model_is_read():
    loaded = _loaded_after("from roadedge.core.openvino_core import shared_core\nassert shared_core().available_devices\n")
    assert "openvino" in loaded and "openvino._pyopenvino" in loaded
    assert not {name for name in loaded if name.startswith(("openvino.tools.ovc", "openvino.frontend.tensorflow"))}
    later = _loaded_after("from roadedge.core.openvino_core import import_openvino\n"
                          "ov = import_openvino()\n"
                          "convert_model = ov.convert_model\n"
                          "import openvino.tools.ovc\n"
                          "assert convert_model is openvino.tools.ovc.convert_model is ov.convert_model\n"
                          "try:\n"
                          "    ov.no_such_name\n"
                          "except AttributeError as err:\n"
                          "    assert 'no_such_name' in str(err)\n"
                          "else:\n"
                          "    raise SystemExit('no AttributeError')\n")
    assert "openvino.tools.ovc" in later
