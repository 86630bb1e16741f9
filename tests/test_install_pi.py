"""scripts/install-pi.sh --dry-run for each profile: the steps it prints (apt packages, the user, a venv with
--system-site-packages, the unit copied from deploy/ with a drop-in, enable --now), the settings file it would write
(loaded here by edge.config as `roadedge run` would), the rule that an existing settings file is kept, and one-line
errors for bad options. The dry run changes nothing; shellcheck checks the script where it is installed."""
import os
import re
import shutil
import subprocess

import pytest

from edge import config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "install-pi.sh")


def dry_run(tmp_path, *args):
    etc = tmp_path / "etc-roadedge"  # where the installer looks for an existing config.yaml (a test's own folder)
    env = dict(os.environ, ROADEDGE_INSTALL_ETC=str(etc))
    result = subprocess.run(["bash", SCRIPT, "--dry-run"] + list(args), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)
    return result


def commands(output):
    return [line[2:] for line in output.splitlines() if line.startswith("+ ")]


def written(output, path):
    """The content the dry run shows for a file it would write, or None."""
    lines, inside = [], False
    for line in output.splitlines():
        if line.startswith("+ write "):
            inside = line.startswith("+ write {} ".format(path))
            continue
        if inside and line.startswith("| "):
            lines.append(line[2:])
        elif inside and line == "|":
            lines.append("")
        else:
            inside = False
    return "\n".join(lines) + "\n" if lines else None


def loaded(tmp_path, profile, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return config.load(profile, str(path))


@pytest.mark.parametrize("profile", ["rpi4", "rpi5"])
def test_a_pi_gets_picamera2_from_apt_a_venv_that_sees_it_the_unit_from_deploy_and_enable_now(tmp_path, profile):
    result = dry_run(tmp_path, "--profile", profile)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    steps = commands(result.stdout)
    etc = str(tmp_path / "etc-roadedge")
    assert steps[:2] == ["apt-get update",
                         "env DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv python3-pip python3-picamera2"]
    assert "python3 -m venv --system-site-packages /opt/roadedge/venv" in steps
    assert "/opt/roadedge/venv/bin/pip install --upgrade " + ROOT in steps
    assert steps.index("python3 -m venv --system-site-packages /opt/roadedge/venv") < steps.index(
        "/opt/roadedge/venv/bin/pip install --upgrade " + ROOT)
    if not _user_exists("roadedge"):
        assert ("useradd --system --user-group --home-dir /var/lib/roadedge --no-create-home --shell /usr/sbin/nologin "
                "roadedge") in steps
    assert "usermod --append --groups video roadedge" in steps
    assert "install -m 0644 {}/deploy/roadedge.service /etc/systemd/system/roadedge.service".format(ROOT) in steps
    assert steps[-2:] == ["systemctl daemon-reload", "systemctl enable --now roadedge.service"]
    assert written(result.stdout, "/etc/systemd/system/roadedge.service.d/install.conf") == (
        "# written by scripts/install-pi.sh: this install's profile, prefix and user\n[Service]\nExecStart=\n"
        "ExecStart=/opt/roadedge/venv/bin/roadedge run --profile {} --config {}/config.yaml\n".format(profile, etc))
    settings = loaded(tmp_path, profile, written(result.stdout, etc + "/config.yaml"))
    assert settings["source"]["type"] == "picamera2"  # from the profile, under the file
    assert [o["type"] for o in settings["outputs"]] == ["jsonl", "mjpeg"]
    assert settings["outputs"][0]["path"] == "-" and settings["outputs"][1]["host"] == "127.0.0.1"
    assert "mosquitto" not in result.stdout
    assert not (tmp_path / "etc-roadedge").exists()  # a dry run changes nothing


def test_mqtt_adds_mosquitto_and_an_mqtt_output_with_its_outbox_in_the_state_directory(tmp_path):
    result = dry_run(tmp_path, "--profile", "rpi5", "--mqtt", "--user", "camera", "--prefix", "/srv/roadedge/")
    assert result.returncode == 0, result.stderr
    steps = commands(result.stdout)
    assert steps[1].endswith("apt-get install -y python3-venv python3-pip python3-picamera2 mosquitto")
    assert "systemctl enable --now mosquitto.service" in steps
    assert steps.index("systemctl enable --now mosquitto.service") < steps.index("systemctl enable --now roadedge.service")
    assert "python3 -m venv --system-site-packages /srv/roadedge/venv" in steps
    assert "install -d -m 0750 -o camera -g camera /var/lib/roadedge /var/cache/roadedge" in steps
    dropin = written(result.stdout, "/etc/systemd/system/roadedge.service.d/install.conf")
    assert dropin.endswith("ExecStart=/srv/roadedge/venv/bin/roadedge run --profile rpi5 --config {}/config.yaml\n"
                           "User=camera\nGroup=camera\n".format(tmp_path / "etc-roadedge"))
    settings = loaded(tmp_path, "rpi5", written(result.stdout, str(tmp_path / "etc-roadedge" / "config.yaml")))
    mqtt = settings["outputs"][0]
    assert (mqtt["type"], mqtt["host"], mqtt["port"], mqtt["tls"]) == ("mqtt", "127.0.0.1", 1883, False)
    assert mqtt["outbox"] == "/var/lib/roadedge/outbox.sqlite"


def test_a_deeplens_off_greengrass_publishes_to_aws_iot_with_the_things_certificates(tmp_path):
    certs = tmp_path / "greengrass-certs"
    certs.mkdir()
    for name in ("a1b2c3.cert.pem", "a1b2c3.private.key", "root.ca.pem", "a1b2c3.public.key"):
        (certs / name).write_text("PEM\n")
    endpoint = "abc123-ats.iot.us-east-1.amazonaws.com"
    result = dry_run(tmp_path, "--profile", "deeplens", "--thing-certs", str(certs), "--iot-endpoint", endpoint,
                     "--thing-name", "deeplens_7")
    assert result.returncode == 0, result.stderr
    steps = commands(result.stdout)
    etc = str(tmp_path / "etc-roadedge")
    assert steps[1] == "env DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv python3-pip"  # no picamera2
    assert "python3 -m venv --system-site-packages /opt/roadedge/venv" in steps  # awscam is a system package
    assert "install -m 0640 -o root -g roadedge {}/a1b2c3.cert.pem {}/certs/thing.cert.pem".format(certs, etc) in steps
    assert "install -m 0640 -o root -g roadedge {}/a1b2c3.private.key {}/certs/thing.private.key".format(certs, etc) in steps
    assert "install -m 0644 {}/root.ca.pem {}/certs/root-ca.pem".format(certs, etc) in steps
    text = written(result.stdout, etc + "/config.yaml")
    assert "backend" not in text  # the profile's model in /opt/awscam/artifacts (not on this machine: swapped below)
    settings = loaded(tmp_path, "deeplens", text + "backend: {model: bundled}\n")
    assert settings["device_name"] == "deeplens_7" and settings["source"]["type"] == "awscam"
    mqtt, fifo = settings["outputs"]
    assert (mqtt["type"], mqtt["host"], mqtt["port"], mqtt["tls"], mqtt["client_id"]) == ("mqtt", endpoint, 8883, True,
                                                                                          "deeplens_7")
    assert (mqtt["cert"], mqtt["key"], mqtt["ca"]) == (etc + "/certs/thing.cert.pem", etc + "/certs/thing.private.key",
                                                       etc + "/certs/root-ca.pem")
    assert fifo["type"] == "fifo" and fifo["path"] == "/run/roadedge/results.mjpeg"  # RuntimeDirectory (PrivateTmp)
    assert steps[-1] == "systemctl enable --now roadedge.service"


def test_an_existing_settings_file_is_never_replaced(tmp_path):
    etc = tmp_path / "etc-roadedge"
    etc.mkdir()
    (etc / "config.yaml").write_text("device_name: mine\n")
    result = dry_run(tmp_path, "--profile", "rpi4")
    assert result.returncode == 0, result.stderr
    assert "= keep {}/config.yaml: it exists, and the installer never replaces it".format(etc) in result.stdout
    assert written(result.stdout, str(etc / "config.yaml")) is None
    assert (etc / "config.yaml").read_text() == "device_name: mine\n"


@pytest.mark.parametrize("args, error", [
    (["--bogus"], "--bogus: unknown option; expected --profile, --mqtt, --user, --prefix, --thing-certs, --iot-endpoint, "
                  "--thing-name, --dry-run"),
    (["--profile", "x86"], "--profile x86: expected rpi4, rpi5 or deeplens"),
    (["--profile"], "--profile: expected a value after it"),
    (["--profile", "--mqtt"], "--profile: expected a value after it"),
    (["--profile", "rpi4", "--user", "root"], "--user root: the service runs as its own unprivileged user; expected "
                                              "another name"),
    (["--profile", "rpi4", "--user", "Bad User"], "--user Bad User: expected a user name of a-z, 0-9, _ and -, starting "
                                                  "with a letter"),
    (["--profile", "rpi4", "--prefix", "/home/pi/roadedge"], "--prefix /home/pi/roadedge: hidden from the service "
                                                             "(ProtectHome=yes); expected e.g. /opt/roadedge"),
    (["--profile", "rpi4", "--prefix", "opt"], "--prefix opt: expected an absolute path"),
    (["--profile", "deeplens"], "--profile deeplens: expected --thing-certs DIR and --iot-endpoint HOST (it publishes "
                                "to AWS IoT), or --mqtt"),
    (["--profile", "deeplens", "--thing-certs", "/nonexistent", "--iot-endpoint", "x-ats.iot.eu-west-1.amazonaws.com"],
     "--thing-certs /nonexistent: no such folder"),
    (["--profile", "rpi4", "--iot-endpoint", "x"], "--iot-endpoint: expected --thing-certs DIR too (the thing's "
                                                   "certificate and key)"),
])
def test_a_bad_option_is_a_one_line_error_and_exit_code_2(tmp_path, args, error):
    result = dry_run(tmp_path, *args)
    assert result.returncode == 2
    assert result.stderr == "install-pi.sh: error: {}\n".format(error)
    assert result.stdout == ""


def test_certificates_folder_without_a_key_is_named(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "thing.cert.pem").write_text("PEM\n")
    result = dry_run(tmp_path, "--profile", "deeplens", "--thing-certs", str(certs), "--iot-endpoint", "e")
    assert result.returncode == 2 and result.stderr == (
        "install-pi.sh: error: --thing-certs {}: no private key (*.private.key or *private.pem.key) in it\n".format(certs))


def test_without_dry_run_it_wants_root():
    command = ["bash", SCRIPT, "--profile", "rpi4"]
    if os.geteuid() == 0:  # as root the real install would start: run it as nobody
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv (util-linux) to drop to another user")
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + command
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert result.returncode == 2 and re.match(r"^install-pi\.sh: error: run as root \(sudo .*\n$", result.stderr)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (Debian package shellcheck; "
                    ".ci/run installs it)")
def test_the_script_is_shellcheck_clean():
    result = subprocess.run(["shellcheck", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    assert result.returncode == 0, result.stdout


def _user_exists(name):
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (Debian package "
                    "systemd; .ci/run installs it)")
def test_the_unit_with_the_installers_drop_in_verifies_clean(tmp_path):
    from tests.test_service_unit import UNIT, verify

    result = dry_run(tmp_path, "--profile", "rpi5", "--user", "camera", "--prefix", "/srv/roadedge")
    dropin = written(result.stdout, "/etc/systemd/system/roadedge.service.d/install.conf")
    with open(UNIT) as handle:
        unit = handle.read()
    assert verify(unit, tmp_path, dropin=dropin) == (0, "")
    # the empty ExecStart= matters: without it the drop-in adds a second command, which a notify service cannot have
    code, said = verify(unit, tmp_path / "no-reset", dropin=dropin.replace("ExecStart=\n", ""))
    assert code != 0 and "more than one ExecStart=" in said, said
