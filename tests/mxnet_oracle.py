"""Helpers for tests that use real MXNet (the isolated venv) as the oracle."""
import os

import pytest

from converters.mxnet_env import venv_python


def require_mxnet():
    """Skip when the MXNet environment is missing, except on CI, where it must be there."""
    if venv_python(required=False) is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs the MXNet environment (.ci/run sets it up): " + os.path.dirname(os.path.dirname(
                venv_python(required=False) or "~/.cache/roadedge/mxnet-venv/bin/python")))
        pytest.skip("no MXNet environment; create it with `roadedge convert setup-mo`")
