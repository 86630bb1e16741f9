"""What the packagers (lambda_zip, deeplens, greengrass) share: following a module's imports to the project files it
needs, pip installing third-party packages for another Python and platform, listing what pip installed, writing zips,
and the one-line summary of what was written."""
import fnmatch
import modulefinder
import os
import re
import subprocess
import sys
import zipfile

from roadedge.core.errors import RoadedgeError

LEFT_OUT = ("bin", "__pycache__", "tests")  # console scripts, byte code for another Python, test suites
STDLIB = set(getattr(sys, "stdlib_module_names", ())) | {"__future__"}


def project_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def follow_imports(modules, root=None, package_data=None, excludes=()):
    """([(path, name in the package)], {top-level names imported from outside the project}) for `modules` and every
    project module they import, at module level or inside functions (modulefinder reads all import statements).

    `package_data`: {package: (glob relative to the package, ...)} data files carried with a package, as setup.py's
    package_data; `excludes`: project packages never followed (they stay out of the package)."""
    root = root or project_root()
    finder = modulefinder.ModuleFinder(path=[root], excludes=list(excludes))  # the rest lands in badmodules
    for name in modules:
        finder.import_hook(name)
    files = []
    for name, module in sorted(finder.modules.items()):
        if module.__file__ and os.path.abspath(module.__file__).startswith(root + os.sep):
            files.append(module.__file__)
            for pattern in (package_data or {}).get(name, ()) if module.__path__ else ():
                folder = os.path.dirname(module.__file__)
                sub, glob = os.path.split(pattern)
                entries = sorted(os.listdir(os.path.join(folder, sub))) if os.path.isdir(os.path.join(folder, sub)) else []
                files += [os.path.join(folder, sub, entry) for entry in entries if fnmatch.fnmatch(entry, glob)]
    missing = [name for name in finder.badmodules if name.rpartition(".")[0] not in finder.modules]  # not `from m import f`
    outside = {name.split(".")[0] for name in missing} - STDLIB - {name.split(".")[0] for name in excludes}
    return [(path, os.path.relpath(path, root).replace(os.sep, "/")) for path in files], outside


def modules_of(package, root=None):
    """The dotted names of the modules directly in a project package (plugin packages are imported whole)."""
    folder = os.path.join(root or project_root(), *package.split("."))
    return sorted("{}.{}".format(package, name[:-3]) for name in os.listdir(folder)
                  if name.endswith(".py") and name != "__init__.py")


def check_target(python_version, platforms, example="3.12"):
    if not re.match(r"^3\.\d{1,2}$", python_version or ""):
        raise RoadedgeError("--python-version {!r}: expected MAJOR.MINOR such as {} (the Lambda runtime's)".format(
            python_version, example))
    for platform in platforms:
        if not re.match(r"^[a-z0-9_]+$", platform or ""):
            raise RoadedgeError("--platform {!r}: expected a wheel platform tag such as manylinux2014_x86_64".format(platform))


def pip_install(folder, requirements, python_version, platforms, no_deps=False):
    """Install `requirements` (pip specifiers) for the target Python and platforms into `folder`; binary wheels only:
    nothing is compiled. RoadedgeError with pip's own reason when it fails."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
               "--target", folder, "--implementation", "cp", "--python-version", python_version, "--only-binary=:all:"]
    for platform in platforms:
        command += ["--platform", platform]
    if no_deps:
        command.append("--no-deps")
    done = subprocess.run(command + list(requirements), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    if done.returncode != 0:
        raise RoadedgeError("pip could not install {} for Python {} on {}: {}".format(
            ", ".join(sorted(requirements)), python_version, ", ".join(platforms), pip_reason(done)))


def pip_reason(done):
    """The line of a failed pip run that says why: its first ERROR: line, else its last line."""
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    return next((line for line in lines if line.startswith("ERROR:")), lines[-1] if lines else "exit {}".format(
        done.returncode))


def installed_files(folder, left_out=LEFT_OUT):
    """[(path, name in the zip)] of what pip installed, less `left_out` folders."""
    found = []
    for top, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in left_out)
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


def size_text(size):
    return "{:.1f} MB".format(size / 1e6) if size >= 1000000 else "{:.1f} kB".format(size / 1e3)


def folder_listing(folder):
    """[(name relative to `folder`, bytes)] of every file below it, sorted."""
    listing = []
    for top, dirs, names in os.walk(folder):
        dirs.sort()
        listing += [(os.path.relpath(os.path.join(top, name), folder).replace(os.sep, "/"),
                     os.path.getsize(os.path.join(top, name))) for name in sorted(names)]
    return listing
