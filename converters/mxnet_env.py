"""The isolated MXNet environment: mxnet 1.9.1 + numpy 1.23.5 + openvino-dev 2024.4 (Model Optimizer) + gluoncv.

MXNet and MO's MXNet frontend cannot live beside the runtime (numpy 2,
current openvino), so they get a virtual environment of their own, made
by `roadedge convert setup-mo` and used for the `mo` engine, for GluonCV's
segmentation networks (the `mxnet` engine) and as the oracle that conversions
are checked against. Its place: $ROADEDGE_MXNET_VENV,
else ~/.cache/roadedge/mxnet-venv.

`setup_environment` (the command's body) builds it with `python -m venv` and
one `pip install` per pinned package, checks `import mxnet, gluoncv` and
`mo --version`, and only then writes MARKER (the interpreter's version and the
requirements); a later run reuses an environment whose marker matches and
whose checks pass, adopts one whose marker lists other requirements when the
installed packages satisfy every pin (the marker is rewritten), and rebuilds
one that does not.
"""
import collections
import os
import shutil
import subprocess
import sys
import time

from roadedge.core.errors import RoadedgeError

VENV_VARIABLE = "ROADEDGE_MXNET_VENV"
REQUIREMENTS = ("numpy==1.23.5", "mxnet==1.9.1", "openvino-dev[mxnet]==2024.4.0", "gluoncv==0.10.5.post0")
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


# ---------------------------------------------------------------------------
# `roadedge convert setup-mo`: create (or reuse) the environment.

MARKER = "roadedge-requirements.txt"  # written last, after the checks pass: its presence means "complete"
_CHECK = (
    "import importlib.metadata as m, sys\n"
    "import mxnet, numpy\n"
    "import openvino.tools.mo\n"
    "import gluoncv\n"
    "print('python %d.%d' % sys.version_info[:2])\n"
    "for name in ('numpy', 'mxnet', 'openvino-dev', 'gluoncv'):\n"
    "    print('%s==%s' % (name, m.version(name)))\n"
)


def marker_text(python_version):
    """What the marker file records: the interpreter's major.minor and the pinned requirements."""
    lines = ["# roadedge MXNet environment, written by `roadedge convert setup-mo` after its checks passed",
             "python " + python_version]
    return "\n".join(lines + list(REQUIREMENTS)) + "\n"


def _marker_lines(text):
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _pins():
    """REQUIREMENTS as {distribution: version}, extras dropped ('openvino-dev[mxnet]==X' -> 'openvino-dev': 'X')."""
    pins = {}
    for requirement in REQUIREMENTS:
        name, _, version = requirement.partition("==")
        pins[name.split("[")[0].strip().lower()] = version.strip()
    return pins


def _tail(text, count=1):
    """The last `count` meaningful lines of a tool's output, joined into one line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-count:]) if lines else "no output"


def _run(args, timeout=600, env=None):
    try:
        result = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                timeout=timeout, check=False, env=env)
    except OSError as err:
        return 127, "{}: {}".format(args[0], err.strerror or err)
    except subprocess.TimeoutExpired:
        return 124, "timed out after {} s".format(timeout)
    return result.returncode, result.stdout.decode("utf-8", "replace")


def clean_env():
    """The environment for the venv's tools: nothing from the host's Python paths leaks in."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(name, None)
    env["PYTHONNOUSERSITE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def mo_executable(venv=None):
    return os.path.join(venv or venv_dir(), "bin", "mo")


def check_environment(venv=None):
    """(ok, detail): `import mxnet, gluoncv` works, `mo --version` works and the installed versions are the pinned ones.

    `detail` is the marker text the environment matches when ok, else what is wrong (one line).
    """
    venv = venv or venv_dir()
    python = os.path.join(venv, "bin", "python")
    if not os.path.isfile(python):
        return False, "no {}".format(python)
    code, output = _run([python, "-c", _CHECK], timeout=300, env=clean_env())
    if code != 0:
        return False, "`import mxnet` / Model Optimizer / `import gluoncv` fails: " + _tail(output)
    found = dict(line.split("==", 1) for line in output.splitlines() if "==" in line)
    for name, version in _pins().items():
        if found.get(name) != version:
            return False, "{} {} installed, {} wanted".format(name, found.get(name, "not"), version)
    code, mo_output = _run([mo_executable(venv), "--version"], timeout=300, env=clean_env())
    if code != 0 or "Version of Model Optimizer" not in mo_output:
        return False, "`mo --version` fails: " + _tail(mo_output)
    python_line = next(line for line in output.splitlines() if line.startswith("python "))
    return True, marker_text(python_line.split()[1])


def environment_status(venv=None):
    """'ready' (complete, marker matches this roadedge's requirements), 'stale', 'incomplete' or 'missing'.

    Cheap (reads files only); `check_environment` runs the real checks.
    """
    venv = venv or venv_dir()
    if not os.path.isfile(os.path.join(venv, "bin", "python")):
        return "missing"
    try:
        with open(os.path.join(venv, MARKER), encoding="utf-8") as handle:
            recorded = _marker_lines(handle.read())
    except OSError:
        return "incomplete"
    if not os.path.isfile(mo_executable(venv)):
        return "incomplete"
    return "ready" if recorded[1:] == list(REQUIREMENTS) else "stale"


def _base_python():
    """An interpreter numpy 1.23.5 has wheels for (CPython 3.8 to 3.11): this one, else one on PATH."""
    if (3, 8) <= sys.version_info[:2] <= (3, 11):
        return sys.executable
    for name in ("python3.11", "python3.10", "python3.9", "python3.8"):
        found = shutil.which(name)
        if found:
            return found
    raise RoadedgeError("the MXNet environment needs Python 3.8-3.11 (numpy 1.23.5, which mxnet 1.9.1 needs, has no "
                        "wheels for Python {}.{}); install python3.11 and run `roadedge convert setup-mo` "
                        "again".format(*sys.version_info[:2]))


def _remove_venv(venv, log):
    """Delete the environment at `venv`: a symlink is unlinked (its target is left alone); only a folder that
    holds a virtual environment (pyvenv.cfg) or nothing is deleted."""
    if os.path.islink(venv):
        log("removing the link {} -> {} (the folder it points to is left alone)".format(venv, os.readlink(venv)))
        os.unlink(venv)
        return
    if not os.path.exists(venv):
        return
    if not os.path.isdir(venv) or (os.listdir(venv) and not os.path.isfile(os.path.join(venv, "pyvenv.cfg"))):
        raise RoadedgeError("{}: exists and is not a virtual environment; refusing to delete it (set {} to another "
                            "folder)".format(venv, VENV_VARIABLE))
    log("removing {}".format(venv))
    shutil.rmtree(venv)


def _pip_install(python, requirements, new, log):
    """pip install `requirements` (all pins, so earlier ones stay put); `new` names the package this step adds."""
    args = [python, "-m", "pip", "install", "--no-input", "--progress-bar", "off"] + list(requirements)
    log("installing {} ...".format(new))
    started = time.monotonic()
    try:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   env=clean_env())
    except OSError as err:
        raise RoadedgeError("cannot run pip ({}): {}".format(python, err.strerror or err)) from None
    recent = collections.deque(maxlen=40)
    for raw in process.stdout:
        line = raw.decode("utf-8", "replace").rstrip()
        if not line.strip():
            continue
        recent.append(line)
        if line.strip().startswith(("Collecting ", "Downloading ", "Installing collected", "Successfully installed")):
            log("  " + line.strip())
    code = process.wait()
    if code != 0:
        errors = [line.strip() for line in recent if line.lstrip().startswith("ERROR")]
        last = errors[-1] if errors else (recent[-1].strip() if recent else "no output")
        raise RoadedgeError("pip failed to install {} (exit {}): {}".format(new, code, last))
    log("  done in {:.0f} s".format(time.monotonic() - started))


def _build(venv, log):
    base = _base_python()
    parent = os.path.dirname(os.path.abspath(venv))
    os.makedirs(parent, exist_ok=True)
    log("creating a virtual environment at {} with {}".format(venv, base))
    code, output = _run([base, "-m", "venv", venv], timeout=600, env=clean_env())
    if code != 0:
        raise RoadedgeError("`{} -m venv {}` failed: {} (on Debian/Ubuntu: apt install python3-venv)".format(
            base, venv, _tail(output)))
    python = os.path.join(venv, "bin", "python")
    # one step per package, each with all pins so far, so a failure names the package that could not be installed
    for count in range(1, len(REQUIREMENTS) + 1):
        _pip_install(python, REQUIREMENTS[:count], REQUIREMENTS[count - 1], log)


def _write_marker(venv, text):
    path = os.path.join(venv, MARKER)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(path + ".tmp", path)


def setup_environment(recreate=False, log=print):
    """Create the MXNet + Model Optimizer environment, or reuse it when it already works.

    Reuse: the marker records the requirements it was built with and the checks
    pass (a few seconds). A missing marker (an environment made by hand, or an
    interrupted build) or a marker for other requirements (an environment from
    an older roadedge) is adopted when the checks pass, i.e. the installed
    packages satisfy every pin: the marker is rewritten. Failing checks mean a
    rebuild. Returns the venv path.
    """
    venv = venv_dir()
    started = time.monotonic()
    if recreate:
        _remove_venv(venv, log)
    status = environment_status(venv)
    if status in ("ready", "incomplete", "stale"):
        ok, detail = check_environment(venv)
        if ok:
            if status != "ready":
                _write_marker(venv, detail)
            how = "reused" if status != "stale" else "adopted (its marker listed older requirements; rewritten)"
            log("MXNet environment at {} is ready ({}), {} in {:.1f} s".format(
                venv, ", ".join(REQUIREMENTS), how, time.monotonic() - started))
            return venv
        why = "was built for other requirements and " if status == "stale" else ""
        log("MXNet environment at {} {}does not work ({}); rebuilding it".format(venv, why, detail))
        _remove_venv(venv, log)
    elif os.path.lexists(venv):  # a dangling link or an empty/foreign folder
        _remove_venv(venv, log)
    _build(venv, log)
    log("checking: import mxnet, mo --version")
    ok, detail = check_environment(venv)
    if not ok:
        raise RoadedgeError("MXNet environment at {} was installed but does not work: {}".format(venv, detail))
    _write_marker(venv, detail)
    log("MXNet environment ready at {} in {:.0f} s".format(venv, time.monotonic() - started))
    return venv


def setup_command(args):
    setup_environment(recreate=getattr(args, "recreate", False))
    return 0
