"""deploy/roadedge.service as shipped: `systemd-analyze security --offline=yes` gives an exposure of 2.5 or less, and
`systemd-analyze verify` is clean (in a root folder holding the system's units and the ExecStart binary, so the
check needs no installed roadedge); the unit asks for what the runtime does (Type=notify, a watchdog longer than the
runtime's own). .ci/run installs systemd, which brings systemd-analyze."""
import os
import re
import shutil
import subprocess
import sys

import pytest

from edge import config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNIT = os.path.join(ROOT, "deploy", "roadedge.service")
MAX_EXPOSURE = 2.5
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (Debian package systemd; "
                                   ".ci/run installs it)")


def unit_settings(path=UNIT):
    """{section: [(key, value), ...]} in file order (systemd keys repeat: DeviceAllow=, SystemCallFilter=)."""
    sections, current = {}, None
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                current = sections.setdefault(line.strip("[]"), [])
                continue
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
    return sections


def service(key):
    return [value for name, value in unit_settings()["Service"] if name == key]


def exposure(unit_path):
    result = subprocess.run([ANALYZE, "security", "--offline=yes", "--no-pager", unit_path], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\S+)", result.stdout)
    assert match, result.stdout
    return float(match.group(1)), match.group(2), result.stdout


def verify(unit_text, tmp_path, name="roadedge.service", with_binary=True, dropin=None):
    """`systemd-analyze verify` of a unit (and a drop-in) installed in a root folder (tmp_path/root) that holds
    copies of this machine's units (the targets the unit is ordered after) and, unless told otherwise, the ExecStart
    binaries."""
    root = tmp_path / "root"
    units = root / "usr" / "lib" / "systemd" / "system"
    if not units.exists():
        shutil.copytree("/usr/lib/systemd/system", str(units), symlinks=True)
    (root / "etc" / "systemd" / "system").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "systemd" / "system" / name).write_text(unit_text)
    if dropin is not None:
        (root / "etc" / "systemd" / "system" / (name + ".d")).mkdir(exist_ok=True)
        (root / "etc" / "systemd" / "system" / (name + ".d") / "install.conf").write_text(dropin)
    for binary in re.findall(r"^ExecStart=(\S+)", unit_text + (dropin or ""), re.M):
        stub = root / binary.lstrip("/")
        if with_binary and not stub.exists():
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("#!/bin/sh\n")
            stub.chmod(0o755)
    result = subprocess.run([ANALYZE, "verify", "--man=no", "--generators=no", "--root=" + str(root), name],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    return result.returncode, result.stdout.strip()


@needs_analyze
def test_the_shipped_unit_is_hardened_to_an_exposure_of_2_5_or_less(tmp_path):
    level, verdict, report = exposure(UNIT)
    assert level <= MAX_EXPOSURE, report
    assert verdict == "OK", report
    for line in ("NoNewPrivileges=", "ProtectSystem=", "ProtectHome=", "PrivateTmp=", "CapabilityBoundingSet=",
                 "SystemCallFilter=~@privileged", "RestrictNamespaces=~user", "ProtectKernelTunables=",
                 "ProtectKernelModules=", "ProtectControlGroups=", "RestrictAddressFamilies=~AF_PACKET",
                 "RestrictAddressFamilies=~AF_NETLINK", "ProtectClock=", "SystemCallArchitectures="):
        assert re.search(r"^✓ " + re.escape(line), report, re.M), (line, report)
    # the plain unit it replaced, for comparison: 9.2 UNSAFE
    plain = tmp_path / "plain.service"
    plain.write_text("[Service]\nType=simple\nUser=roadedge\nExecStart=/usr/bin/true\n")
    assert exposure(str(plain))[:2] == (9.2, "UNSAFE")


@needs_analyze
def test_systemd_analyze_verify_is_clean(tmp_path):
    with open(UNIT) as handle:
        text = handle.read()
    assert verify(text, tmp_path) == (0, "")
    # the same check catches what it should: a misspelt key, and a missing binary
    assert "Unknown key 'ProtectKernelTunable'" in verify(text.replace("ProtectKernelTunables=", "ProtectKernelTunable="),
                                                          tmp_path)[1]
    code, said = verify(text, tmp_path / "empty", with_binary=False)
    assert code != 0 and "/opt/roadedge/venv/bin/roadedge is not executable" in said


def test_the_unit_asks_for_what_the_runtime_does():
    assert service("Type") == ["notify"] and service("NotifyAccess") == ["main"]
    assert service("ExecStart") == ["/opt/roadedge/venv/bin/roadedge run --config /etc/roadedge/config.yaml"]
    assert service("Restart") == ["always"] and service("KillSignal") == ["SIGTERM"]
    # the runtime's own watchdog acts first: every stall it may take in a row, plus time to reopen the part
    defaults = config.PIPELINE
    runtime_gives_up_s = defaults["watchdog_s"].default * (defaults["watchdog_restarts"].default + 1)
    watchdog_s = int(service("WatchdogSec")[0])
    assert watchdog_s >= runtime_gives_up_s + 30, (watchdog_s, runtime_gives_up_s)
    # the drain on a clean stop fits in the stop timeout
    assert int(service("TimeoutStopSec")[0]) > 10  # the mqtt/greengrass outboxes' drain_timeout_s default
    assert service("User") == ["roadedge"] and service("SupplementaryGroups") == ["video"]
    assert service("StateDirectory") == ["roadedge"] and "HOME=/var/lib/roadedge" in service("Environment")
    assert service("RestrictAddressFamilies") == ["AF_UNIX AF_INET AF_INET6"]
    assert service("DevicePolicy") == ["closed"] and "char-video4linux rw" in service("DeviceAllow")
    assert service("MemoryDenyWriteExecute") == ["no"]  # OpenVINO's CPU plugin compiles kernels at run time
    assert service("CapabilityBoundingSet") == [""] and service("SystemCallFilter")[0] == "@system-service"


MDWE_RUN = """
import ctypes, sys
if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(77)
from roadedge.cli import main
sys.exit(main(["run", "--source", "synthetic:1", "--frames", "2", "--no-preview", "--quiet", "--output", "jsonl:-"]))
"""


def test_why_memory_deny_write_execute_stays_off_openvinos_cpu_plugin_cannot_compile_under_it():
    """The kernel's own memory-deny-write-execute (Linux 6.3+; systemd 253+ uses it for MemoryDenyWriteExecute=yes,
    older systemd a seccomp filter that refuses even more) stops OpenVINO's CPU plugin: its kernels are generated at
    run time and made executable with mprotect. Should this ever pass, the unit can say MemoryDenyWriteExecute=yes."""
    result = subprocess.run([sys.executable, "-c", MDWE_RUN], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    if result.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3 or later)")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "OpenVINO cannot compile" in result.stderr and "(can't protect)" in result.stderr, result.stderr
