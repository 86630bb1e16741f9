"""The decoding Lambda's deployment zip: the handler's package, the project modules it imports (only those, found by
following its imports), their data files, and the third-party packages the Lambda runtime lacks (numpy, Pillow),
installed by pip for the target Python and platform.

Pillow reads the mask PNGs rather than a PNG reader of our own: the masks are written by Pillow, and it reads every
filter, bit depth and interlacing a PNG may use, where a reader of our own would have to be proven on all of them. It
costs 8 MB of the zip (22 MB unpacked, most of it the image libraries it links) beside numpy's 15 MB (51 MB): with
both the zip is about 23 MB, 74 MB unpacked, within Lambda's 50 MB upload and 250 MB unpacked limits. boto3 and
botocore are not carried: the Lambda runtime has them.
"""
import fnmatch
import modulefinder
import os
import re
import subprocess
import sys
import zipfile

from roadedge.core.errors import RoadedgeError

HANDLER_MODULE = "cloud.lambda_decode.handler"
HANDLER = HANDLER_MODULE + ".handler"
THIRD_PARTY = {"numpy": "numpy", "PIL": "Pillow"}  # import name -> distribution pip installs into the zip
IN_THE_RUNTIME = ("boto3", "botocore")
PACKAGE_DATA = {"roadedge.core": ("data/*.json",)}  # as setup.py's package_data, for the packages the zip carries
DEFAULT_PYTHON = "3.12"
DEFAULT_PLATFORM = "manylinux2014_x86_64"
LEFT_OUT = ("bin", "__pycache__", "tests")  # console scripts, byte code for another Python, test suites


def project_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def project_files(root=None):
    """[(path, name in the zip)] of the project modules the handler imports, and their packages' data files.

    RoadedgeError when the handler imports a third-party package the zip does not carry."""
    root = root or project_root()
    finder = modulefinder.ModuleFinder(path=[root])  # only the project is searched: the rest lands in badmodules
    finder.import_hook(HANDLER_MODULE)
    files = []
    for name, module in sorted(finder.modules.items()):
        if module.__file__ and os.path.abspath(module.__file__).startswith(root + os.sep):
            files.append(module.__file__)
            for pattern in PACKAGE_DATA.get(name, ()) if module.__path__ else ():
                folder = os.path.dirname(module.__file__)
                sub, glob = os.path.split(pattern)
                files += [os.path.join(folder, sub, entry) for entry in sorted(os.listdir(os.path.join(folder, sub)))
                          if fnmatch.fnmatch(entry, glob)]
    outside = sorted({name.split(".")[0] for name in finder.badmodules} - set(sys.stdlib_module_names) - set(THIRD_PARTY)
                     - set(IN_THE_RUNTIME) - {"__future__"})
    if outside:
        raise RoadedgeError("{} imports {}, which the Lambda zip does not carry: add {} to THIRD_PARTY in {}".format(
            HANDLER_MODULE, ", ".join(outside), "it" if len(outside) == 1 else "them", __file__))
    return [(path, os.path.relpath(path, root).replace(os.sep, "/")) for path in files]


def check_target(python_version, platforms):
    if not re.match(r"^3\.\d{1,2}$", python_version or ""):
        raise RoadedgeError("--python-version {!r}: expected MAJOR.MINOR such as 3.12 (the Lambda runtime's)".format(
            python_version))
    for platform in platforms:
        if not re.match(r"^[a-z0-9_]+$", platform or ""):
            raise RoadedgeError("--platform {!r}: expected a wheel platform tag such as manylinux2014_x86_64".format(platform))


def pip_install(folder, python_version, platforms, requirements=None):
    """Install the third-party packages for the target into `folder` (binary wheels only: nothing is compiled)."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
               "--target", folder, "--implementation", "cp", "--python-version", python_version, "--only-binary=:all:"]
    for platform in platforms:
        command += ["--platform", platform]
    done = subprocess.run(command + list(requirements or sorted(THIRD_PARTY.values())), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        reason = next((line for line in lines if line.startswith("ERROR:")), lines[-1] if lines else "exit {}".format(
            done.returncode))
        raise RoadedgeError("pip could not install {} for Python {} on {}: {}".format(
            ", ".join(sorted(THIRD_PARTY.values())), python_version, ", ".join(platforms), reason))


def installed_files(folder):
    """[(path, name in the zip)] of what pip installed, less LEFT_OUT folders."""
    found = []
    for top, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in LEFT_OUT)
        found += [(os.path.join(top, name), os.path.relpath(os.path.join(top, name), folder).replace(os.sep, "/"))
                  for name in sorted(names)]
    return found


def installed_versions(folder):
    """{distribution: version} from the .dist-info folders pip wrote."""
    versions = {}
    for entry in os.listdir(folder):
        match = re.match(r"^(.+?)-([^-]+)\.dist-info$", entry)
        if match:
            versions[match.group(1)] = match.group(2)
    return versions


def write_zip(handle, entries):
    """The zip of (path, name) entries in `handle`; file modes kept (shared libraries stay executable)."""
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path, name in entries:
            archive.write(path, name)
