import os
import shutil

import botocore.retries.standard
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from PIL import Image

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")

# Property-based tests: "ci" (the default) keeps each suite to seconds; HYPOTHESIS_PROFILE=soak runs many more
# examples locally. Every parser test asserts a valid result or the project's own error, never another exception.
settings.register_profile("ci", max_examples=150, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("soak", max_examples=5000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def make_image(path, width=64, height=48, seed=0):
    """A small real image file (JPEG or PNG by extension) with noise content."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def voc_fixture_dir(tmp_path):
    """The hand-written XML fixtures in RDD layout (Annotations/ + JPEGImages/), with images made to match."""
    root = tmp_path / "voc"
    annotations = root / "Annotations"
    annotations.mkdir(parents=True)
    for name in sorted(os.listdir(os.path.join(FIXTURES, "voc"))):
        if name.endswith(".xml"):
            shutil.copy(os.path.join(FIXTURES, "voc", name), annotations / name)
    images = root / "JPEGImages"
    make_image(str(images / "labelimg_order.jpg"), seed=1)
    make_image(str(images / "rdd_order.jpg"), seed=2)
    make_image(str(images / "no_extension.png"), seed=3)
    make_image(str(images / "no_objects.jpg"), seed=4)
    return root


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Fake credentials, no real AWS configuration, and no back-off sleeps between retries."""
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.0)


def import_standin(monkeypatch, name):
    """Import tests/standins/<name>.py as the top-level module `name` for one test; gone again afterwards.

    sys.modules gets a recorded entry *before* the import, so monkeypatch's undo removes the module (an entry
    recorded after the import would be restored, leaking the stand-in into later tests).
    """
    import importlib
    import sys

    monkeypatch.syspath_prepend(os.path.join(os.path.dirname(os.path.abspath(__file__)), "standins"))
    monkeypatch.setitem(sys.modules, name, None)
    del sys.modules[name]
    return importlib.import_module(name)


def import_standin_package(monkeypatch, name):
    """import_standin for a stand-in package (tests/standins/<top>/...): `name` may be dotted
    ("awsiot.greengrasscoreipc.clientv2"). Every module of the package is recorded in sys.modules before the
    import, so all of them (not only the one imported) are gone again after the test."""
    import importlib
    import sys

    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standins")
    top = name.split(".")[0]
    modules = []
    for folder, _, files in os.walk(os.path.join(root, top)):
        package = os.path.relpath(folder, root).replace(os.sep, ".")
        modules.extend(package if f == "__init__.py" else package + "." + f[:-3] for f in files if f.endswith(".py"))
    monkeypatch.syspath_prepend(root)
    for module in sorted(modules):
        monkeypatch.setitem(sys.modules, module, None)
        del sys.modules[module]
    return importlib.import_module(name)
