"""`roadedge package deeplens OUT_DIR`: the DeepLens project Lambda (Greengrass v1, Python 3.7) and its model.

OUT_DIR/roadedge-deeplens-lambda.zip holds lambda_function.py at the top, the project modules a DeepLens imports and
their data files, and the pure-Python packages the device lacks; OUT_DIR/model.tar.gz holds the IR (.xml, .bin and
the metadata .json beside it), which the DeepLens project puts in /opt/awscam/artifacts/, where the `deeplens`
profile looks for it.

Which project modules: lambda_function's imports, followed (modulefinder reads the import statements of every
function too, so the plugins' lazy imports are followed), plus every module of the plugin packages, because
edge.plugins imports each of them to find the `type:` it implements. converters, training, cloud and the command
line are left out: a DeepLens runs models already converted and never serves or trains.

Which third-party packages: every import the followed modules make from outside the project must be in one of the
three tables below, else the build stops naming it. VENDORED are the ones the runtime needs on any DeepLens and that
are pure Python (PyYAML reads the profiles; paho-mqtt is the mqtt sink; prometheus-client serves /metrics beside a
preview), plus typing-extensions, which paho-mqtt 2 needs on Python 3.7 without declaring it; they are installed for
Python 3.7 without dependencies (pip's resolver would not add typing-extensions) and PyYAML's optional C extension is
dropped (`yaml` falls back to its pure loader): nothing compiled goes to the device. ON_THE_DEVICE are
what the DeepLens image has (numpy, cv2, awscam, greengrasssdk and the Kinesis Video library). NOT_CARRIED are
imported only by plugins a DeepLens profile does not use; they stay out (and fail with the plugin's own one-line
message if a profile asks for one).
"""
import os
import shutil
import tarfile
import zipfile

from packagers import common
from roadedge.core import fsutil
from roadedge.core.errors import RoadedgeError, file_error

ZIP_NAME = "roadedge-deeplens-lambda.zip"
MODEL_NAME = "model.tar.gz"
HANDLER = "lambda_function.function_handler"
PYTHON = "3.7"
PLATFORM = "manylinux2014_x86_64"  # the DeepLens's Atom; only pure-Python files are kept from what pip installs
PLUGIN_PACKAGES = ("edge.sources", "edge.backends", "edge.sinks", "edge.tasks")
ENTRY_MODULES = ("lambda_function", "device_profiles")
LEFT_OUT = ("converters", "training", "cloud", "packagers", "roadedge.cli", "tests")
PACKAGE_DATA = {"roadedge.core": ("data/*.json",), "edge": ("schemas/*.json",), "edge.console": ("static/*",),
                "device_profiles": ("*.yaml",)}
# import name -> the release range for Python 3.7 (pinned: an index may offer newer releases that need 3.8+)
VENDORED = {"yaml": "PyYAML>=5.1,<6.1", "paho": "paho-mqtt>=2.1,<2.2", "prometheus_client": "prometheus-client>=0.17,<0.18"}
VENDORED_DEPENDENCIES = ("typing-extensions>=4.6,<4.8",)  # paho-mqtt 2 takes Literal from it on 3.7 (not declared)
ON_THE_DEVICE = ("numpy", "cv2", "awscam", "greengrasssdk", "mo", "DeepLens_Kinesis_Video")
NOT_CARRIED = {
    "openvino": "the openvino backend (a DeepLens infers through awscam)",
    "picamera2": "the Raspberry Pi camera source",
    "mxnet": "the mxnet backend (too big for the Lambda; convert the model to IR)",
    "boto3": "the s3 and kvs sinks and the sagemaker backend",
    "botocore": "the s3 and kvs sinks and the sagemaker backend",
    "av": "the kvs sink's encoder",
    "awsiot": "the greengrass sink's v2 (a DeepLens Lambda uses v1, greengrasssdk)",
    "PIL": "the masks sink's PNG writer fallback",
}
BINARY_SUFFIXES = (".so", ".pyd", ".dylib", ".dll")
MODEL_SUFFIXES = (".xml", ".bin", ".json")


def project_files(root=None):
    """[(path, name in the zip)] of what a DeepLens imports from the project; RoadedgeError naming a third-party
    import that is in none of VENDORED, ON_THE_DEVICE and NOT_CARRIED."""
    root = root or common.project_root()
    modules = list(ENTRY_MODULES) + [m for package in PLUGIN_PACKAGES for m in common.modules_of(package, root)]
    files, outside = common.follow_imports(modules, root, PACKAGE_DATA, excludes=LEFT_OUT)
    unknown = sorted(outside - set(VENDORED) - set(ON_THE_DEVICE) - set(NOT_CARRIED))
    if unknown:
        raise RoadedgeError("the DeepLens Lambda imports {}, which is in none of VENDORED, ON_THE_DEVICE or NOT_CARRIED "
                            "in {}: say where it comes from on the device".format(", ".join(unknown), __file__))
    return files


def model_files(model):
    """[(path, name in model.tar.gz)]: the IR's .xml, its .bin and the metadata .json when there is one."""
    model = os.path.abspath(model)
    stem, suffix = os.path.splitext(model)
    if suffix != ".xml":
        raise RoadedgeError("--model {}: expected an OpenVINO IR .xml (with its .bin beside it)".format(model))
    for path in (model, stem + ".bin"):
        if not os.path.isfile(path):
            raise RoadedgeError("--model {}: {}: no such file; expected the IR's .xml and .bin side by side".format(
                model, path))
    return [(path, os.path.basename(path)) for path in (stem + s for s in MODEL_SUFFIXES) if os.path.isfile(path)]


def vendor(site):
    """pip installs VENDORED for Python 3.7 into `site`; the C extension PyYAML may bring is removed and anything
    else compiled is refused. Returns [(path, name in the zip)] and {distribution: version}."""
    common.pip_install(site, sorted(VENDORED.values()) + list(VENDORED_DEPENDENCIES), PYTHON, [PLATFORM], no_deps=True)
    for top, _dirs, names in os.walk(site):
        for name in names:
            if name.endswith(BINARY_SUFFIXES) and os.path.relpath(top, site).split(os.sep)[0] in ("yaml", "_yaml"):
                os.unlink(os.path.join(top, name))  # yaml/_yaml*.so: `yaml` imports it only if it can
    if os.path.isdir(os.path.join(site, "_yaml")):
        shutil.rmtree(os.path.join(site, "_yaml"))
    files = common.installed_files(site)
    compiled = [name for _, name in files if name.endswith(BINARY_SUFFIXES)]
    if compiled:
        raise RoadedgeError("the vendored packages are not pure Python: {}; a DeepLens Lambda carries no compiled "
                            "code".format(", ".join(compiled[:5])))
    return files, common.installed_versions(site)


def write_model(path, files):
    with fsutil.atomic_file(path) as handle:
        with tarfile.open(fileobj=handle, mode="w:gz") as archive:
            for source, name in files:
                info = archive.gettarinfo(source, arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(source, "rb") as data:
                    archive.addfile(info, data)


def build(out, model=None, overwrite=False):
    """Write OUT_DIR (atomically: all of it or nothing). Returns what describe() prints."""
    from edge.backends.openvino import BUNDLED_MODEL

    models = model_files(model or BUNDLED_MODEL)
    project = project_files()
    with fsutil.atomic_dir(out, overwrite=overwrite, inputs=[path for path, _ in models]) as folder:
        site = os.path.join(folder, ".site")
        vendored, versions = vendor(site)
        try:
            with fsutil.atomic_file(os.path.join(folder, ZIP_NAME)) as handle:
                common.write_zip(handle, project + vendored)
            write_model(os.path.join(folder, MODEL_NAME), models)
        except OSError as err:
            raise file_error(out, err, "write") from None
        shutil.rmtree(site)
    return {"project": [name for _, name in project], "vendored": versions, "model": [name for _, name in models],
            "vendored_files": len(vendored)}


def describe(out, written):
    """The contents and sizes, as printed after a build."""
    folder_sizes = dict(common.folder_listing(out))
    lines = ["wrote {}/".format(out.rstrip("/"))]
    with zipfile.ZipFile(os.path.join(out, ZIP_NAME)) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
    lines.append("  {}  {} ({} unpacked): lambda_function.py and {} project files (handler {}, Python {}); {} for "
                 "Python {} ({} files, pure Python); numpy and cv2 are the device's".format(
                     ZIP_NAME, common.size_text(folder_sizes[ZIP_NAME]), common.size_text(unpacked),
                     len(written["project"]) - 1, HANDLER, PYTHON,
                     ", ".join("{} {}".format(n, v) for n, v in sorted(written["vendored"].items())), PYTHON,
                     written["vendored_files"]))
    lines.append("  {}  {}: {}".format(MODEL_NAME, common.size_text(folder_sizes[MODEL_NAME]),
                                       ", ".join(written["model"])))
    expected = profile_model()
    if os.path.basename(expected) != written["model"][0]:
        lines.append("note: the deeplens profile loads {}; this model unpacks as {}: set `backend: {{model: {}}}` in a "
                     "YAML file the Lambda's ROADEDGE_CONFIG environment variable names".format(
                         expected, written["model"][0], os.path.join(os.path.dirname(expected), written["model"][0])))
    return "\n".join(lines)


def profile_model():
    """Where the deeplens profile loads the model from (the DeepLens puts a project's model in /opt/awscam/artifacts)."""
    from edge.config import profile_path, read_yaml

    return read_yaml(profile_path("deeplens"))["backend"]["model"]
