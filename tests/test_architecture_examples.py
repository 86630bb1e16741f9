"""The three plugin examples in ARCHITECTURE.md are real: loaded as plugin modules, they run through the loop."""
import importlib.util
import logging
import os
import re
import sys
import threading

from edge import config, plugins
from edge.pipeline import Pipeline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def examples():
    with open(os.path.join(ROOT, "ARCHITECTURE.md"), encoding="utf-8") as handle:
        text = handle.read()
    blocks = re.findall(r"```python\n# (edge/\w+/\w+\.py)\n(.*?)```", text, re.S)
    return {path: code for path, code in blocks}


def load(path, code, tmp_path):
    name = "architecture_example_" + os.path.basename(path)[:-3]
    file = tmp_path / (name + ".py")
    file.write_text(code)
    spec = importlib.util.spec_from_file_location(name, str(file))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_the_documented_source_backend_and_sink_run_through_the_loop(tmp_path):
    found = examples()
    assert set(found) == {"edge/sources/testcard.py", "edge/backends/constant.py", "edge/sinks/counter.py"}
    source, backend, sink = (load(path, found[path], tmp_path) for path in
                             ("edge/sources/testcard.py", "edge/backends/constant.py", "edge/sinks/counter.py"))
    for module in (source, backend, sink):
        assert module.TYPE and callable(module.open)
        for option in module.OPTIONS.values():
            assert isinstance(option, plugins.Option)
    context = {"log": logging.getLogger("example"), "stop": threading.Event(), "device": "doc", "boot_id": "b"}
    settings = config.load("x86-openvino-cpu", None, {"source": {"type": "synthetic"}, "outputs": []})
    settings["pipeline"]["stats_interval"] = 0
    counter = sink.open(plugins.checked(sink.OPTIONS, {"every": 5}, "counter sink"), context)
    pipeline = Pipeline(source.open(plugins.checked(source.OPTIONS, {"frames": 12}, "testcard source"), context),
                        backend.open(plugins.checked(backend.OPTIONS, {}, "constant backend"), context),
                        [counter], settings, boot_id="b")
    summary = pipeline.run()
    assert summary["frames"] == 12 and summary["detections"] == 12 and summary["messages"] == 12
    assert counter.stats() == {"detections": 12}
    assert pipeline.stats_snapshot()["sinks"] == {"counter": {"detections": 12}}
