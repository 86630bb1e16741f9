"""roadedge keeps OpenVINO's import-time usage telemetry (a Google Analytics event from openvino.tools.ovc and a
counter in ~/intel) out of its processes: roadedge/core/telemetry.py."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code, home, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}  # OpenVINO skips CI
    env.update(HOME=str(home), PYTHONPATH=REPO, **extra)
    result = subprocess.run([sys.executable, "-c", code], cwd=str(home), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, timeout=120)
    assert result.returncode == 0, result.stdout.decode()
    return result.stdout.decode()


# the sending goes through openvino_telemetry's sender thread; waiting for it keeps the control run deterministic
WAIT = ("import time, threading; time.sleep(0.5); "
        "[t.join(5) for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon]")


def test_importing_the_runtime_leaves_openvinos_telemetry_out(tmp_path):
    plain, ours = tmp_path / "plain", tmp_path / "ours"
    plain.mkdir()
    ours.mkdir()
    run_python("import openvino; " + WAIT, plain)
    if not (plain / "intel").exists():
        pytest.skip("this OpenVINO records no telemetry at import: nothing to keep out")
    out = run_python("import sys; import edge.backends.openvino, roadedge.cli; import openvino; "
                     "print(sys.modules['openvino_telemetry'], openvino.tools.ovc.telemetry_utils.tm.__name__); " + WAIT, ours)
    assert out.split() == ["None", "openvino.tools.ovc.telemetry_stub"]
    assert not (ours / "intel").exists()  # no consent file, client id or import counter written to the home


def test_the_environment_variable_leaves_openvino_alone(tmp_path):
    out = run_python("import sys, edge; print(sys.modules.get('openvino_telemetry', 'absent'))", tmp_path,
                     ROADEDGE_OPENVINO_TELEMETRY="1")
    assert out.strip() == "absent"
