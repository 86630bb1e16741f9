"""The isolated MXNet environment: mxnet 1.9.1 + numpy 1.23.5 + openvino-dev 2024.4 (Model Optimizer).

MXNet and MO's MXNet frontend cannot live beside the runtime (numpy 2,
current openvino), so they get a virtual environment of their own, made
by `roadedge convert setup-mo` and used for the `mo` engine and as the
oracle that conversions are checked against. Its place: $ROADEDGE_MXNET_VENV,
else ~/.cache/roadedge/mxnet-venv.
"""
import os
import subprocess
import sys

from edge.errors import RoadedgeError

VENV_VARIABLE = "ROADEDGE_MXNET_VENV"
REQUIREMENTS = ("numpy==1.23.5", "mxnet==1.9.1", "openvino-dev[mxnet]==2024.4.0")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def venv_dir():
    return os.environ.get(VENV_VARIABLE) or os.path.join(os.path.expanduser("~"), ".cache", "roadedge", "mxnet-venv")


def venv_python(required=True):
    """The venv's python, or None / RoadedgeError (with the fix) when it is not set up."""
    python = os.path.join(venv_dir(), "bin", "python")
    if os.path.isfile(python):
        return python
    if required:
        raise RoadedgeError("{}: no MXNet environment (needed for MXNet and Model Optimizer); "
                            "create it with `roadedge convert setup-mo`".format(venv_dir()))
    return None


def run_in_venv(args, input_bytes=None, timeout=1800):
    """Run `python ARGS` in the venv with this repository importable; returns CompletedProcess (bytes)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run([venv_python()] + list(args), input=input_bytes, capture_output=True, env=env,
                          timeout=timeout, check=False)


def current_python_is_venv():
    return os.path.realpath(sys.prefix) == os.path.realpath(venv_dir())
