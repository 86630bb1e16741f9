#!/usr/bin/env bash
# Install roadedge as a systemd service on a Raspberry Pi 4/5, or on an AWS DeepLens moving off Greengrass.
#
#   sudo scripts/install-pi.sh [--profile rpi4|rpi5|deeplens] [--mqtt] [--user NAME] [--prefix DIR]
#                              [--thing-certs DIR --iot-endpoint HOST [--thing-name NAME]] [--dry-run]
#
# Steps: apt packages (python3-venv; python3-picamera2 on a Pi; mosquitto with --mqtt), the service user (in the
# video group), a virtual environment that sees the system's packages (picamera2 from apt, awscam on a DeepLens),
# roadedge installed into it from this repository, /etc/roadedge/config.yaml from the profile (an existing one is
# never replaced), the thing's certificates in /etc/roadedge/certs (deeplens), deploy/roadedge.service copied as is
# to /etc/systemd/system with a drop-in for the profile, prefix and user, daemon-reload, enable --now.
# --dry-run prints every step (and every file it would write) and changes nothing.
# PYTHON=python3.7 picks the interpreter for the venv (a DeepLens's python3 is 3.5; roadedge needs 3.7 or later).
set -euo pipefail

PROG=install-pi.sh
REPO=$(cd "$(dirname "$0")/.." && pwd)
DRY_RUN=0
PROFILE=""
MQTT=0
SERVICE_USER=roadedge
PREFIX=/opt/roadedge
THING_CERTS=""
IOT_ENDPOINT=""
THING_NAME=""
PYTHON=${PYTHON:-python3}
ETC=${ROADEDGE_INSTALL_ETC:-/etc/roadedge}  # another folder only for the installer's tests
STATE=/var/lib/roadedge
CACHE=/var/cache/roadedge
UNIT_DIR=/etc/systemd/system

die() {
    printf '%s: error: %s\n' "$PROG" "$1" >&2
    exit 2
}

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
}

value() {  # the value of option $1, or a one-line error when it is missing
    if [ "$#" -lt 2 ] || [ -z "$2" ] || [ "${2#--}" != "$2" ]; then
        die "$1: expected a value after it"
    fi
    printf '%s' "$2"
}

while [ "$#" -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --mqtt) MQTT=1 ;;
        --profile) PROFILE=$(value "$@"); shift ;;
        --user) SERVICE_USER=$(value "$@"); shift ;;
        --prefix) PREFIX=$(value "$@"); shift ;;
        --thing-certs) THING_CERTS=$(value "$@"); shift ;;
        --iot-endpoint) IOT_ENDPOINT=$(value "$@"); shift ;;
        --thing-name) THING_NAME=$(value "$@"); shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "$1: unknown option; expected --profile, --mqtt, --user, --prefix, --thing-certs, --iot-endpoint, --thing-name, --dry-run" ;;
    esac
    shift
done

detect_profile() {  # the same rule as edge.config.detect_profile, without Python
    if [ -d /opt/awscam ] || [ -e /etc/awscam ]; then echo deeplens; return; fi
    local model=""
    [ -r /proc/device-tree/model ] && model=$(tr -d '\0' < /proc/device-tree/model)
    case "$model" in
        *"Raspberry Pi 5"*) echo rpi5 ;;
        *"Raspberry Pi"*) echo rpi4 ;;
        *) echo "" ;;
    esac
}

[ -n "$PROFILE" ] || PROFILE=$(detect_profile)
case "$PROFILE" in
    rpi4|rpi5|deeplens) ;;
    "") die "--profile: not a Raspberry Pi or a DeepLens; expected --profile rpi4, rpi5 or deeplens" ;;
    *) die "--profile $PROFILE: expected rpi4, rpi5 or deeplens" ;;
esac
case "$SERVICE_USER" in
    root) die "--user root: the service runs as its own unprivileged user; expected another name" ;;
    *[!a-z0-9_-]*|[!a-z_]*) die "--user $SERVICE_USER: expected a user name of a-z, 0-9, _ and -, starting with a letter" ;;
esac
case "$PREFIX" in
    /home|/home/*|/root|/root/*|/run/user/*) die "--prefix $PREFIX: hidden from the service (ProtectHome=yes); expected e.g. /opt/roadedge" ;;
    /*) PREFIX=${PREFIX%/} ;;
    *) die "--prefix $PREFIX: expected an absolute path" ;;
esac
[ -z "$THING_NAME" ] || case "$THING_NAME" in
    *[!A-Za-z0-9:_-]*) die "--thing-name $THING_NAME: expected an AWS IoT thing name (A-Z a-z 0-9 : _ -)" ;;
esac

CERT="" KEY="" CA=""
if [ "$PROFILE" = deeplens ]; then
    if { [ -z "$THING_CERTS" ] || [ -z "$IOT_ENDPOINT" ]; } && [ "$MQTT" = 0 ]; then
        die "--profile deeplens: expected --thing-certs DIR and --iot-endpoint HOST (it publishes to AWS IoT), or --mqtt"
    fi
fi
if [ -n "$THING_CERTS" ]; then
    [ -n "$IOT_ENDPOINT" ] || die "--thing-certs: expected --iot-endpoint HOST too (the account's <prefix>-ats.iot.<region>.amazonaws.com)"
    [ -d "$THING_CERTS" ] || die "--thing-certs $THING_CERTS: no such folder"
    first() {  # the first file in $THING_CERTS matching one of the patterns
        local pattern file
        for pattern in "$@"; do
            for file in "$THING_CERTS"/$pattern; do
                [ -f "$file" ] && { printf '%s' "$file"; return 0; }
            done
        done
        return 0  # none: the caller names what is missing
    }
    CERT=$(first '*.cert.pem' '*certificate.pem.crt' '*.crt')
    KEY=$(first '*.private.key' '*private.pem.key' '*.key')
    CA=$(first 'root.ca.pem' 'AmazonRootCA1.pem' '*RootCA*.pem')
    [ -n "$CERT" ] || die "--thing-certs $THING_CERTS: no certificate (*.cert.pem or *certificate.pem.crt) in it"
    [ -n "$KEY" ] || die "--thing-certs $THING_CERTS: no private key (*.private.key or *private.pem.key) in it"
elif [ -n "$IOT_ENDPOINT" ]; then
    die "--iot-endpoint: expected --thing-certs DIR too (the thing's certificate and key)"
fi
[ -n "$THING_NAME" ] || THING_NAME=$(hostname -s 2>/dev/null || echo roadedge)

if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
    die "run as root (sudo $0 ...), or with --dry-run to see the steps"
fi

# ---- how each step is shown and done -------------------------------------------------------------------------------

step() {  # a heading
    printf '== %s\n' "$*"
}

run() {  # a command: printed, and run unless --dry-run
    printf '+'
    printf ' %q' "$@"
    printf '\n'
    [ "$DRY_RUN" = 1 ] || "$@"
}

write() {  # write FILE MODE OWNER:GROUP, content on stdin: printed; written through a temporary file and a rename
    local file=$1 mode=$2 owner=$3 content
    content=$(cat)
    printf '+ write %s (mode %s, %s)\n' "$file" "$mode" "$owner"
    printf '%s\n' "$content" | sed 's/^/| /'
    if [ "$DRY_RUN" = 0 ]; then
        local tmp
        tmp=$(mktemp "$file.XXXXXX")
        printf '%s\n' "$content" > "$tmp"
        chmod "$mode" "$tmp"
        chown "$owner" "$tmp"
        mv -f "$tmp" "$file"
    fi
}

# ---- the steps ------------------------------------------------------------------------------------------------------

PACKAGES="python3-venv python3-pip"
case "$PROFILE" in
    rpi4|rpi5) PACKAGES="$PACKAGES python3-picamera2" ;;
esac
[ "$MQTT" = 0 ] || PACKAGES="$PACKAGES mosquitto"

step "apt packages ($PROFILE)"
run apt-get update
# shellcheck disable=SC2086  # one word per package
run env DEBIAN_FRONTEND=noninteractive apt-get install -y $PACKAGES

step "the service user $SERVICE_USER (video group: the camera)"
if id -u "$SERVICE_USER" >/dev/null 2>&1; then
    printf '= user %s exists\n' "$SERVICE_USER"
else
    run useradd --system --user-group --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
fi
run usermod --append --groups video "$SERVICE_USER"

step "virtual environment $PREFIX/venv (sees the system's picamera2 / awscam)"
run install -d -m 0755 "$PREFIX"
run "$PYTHON" -m venv --system-site-packages "$PREFIX/venv"
# only-if-needed (pip's default): the apt numpy that picamera2's compiled parts were built against stays
run "$PREFIX/venv/bin/pip" install --upgrade "$REPO"

step "directories (systemd makes them too, from StateDirectory= and CacheDirectory=; older systemd does not)"
run install -d -m 0755 "$ETC"
run install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$STATE" "$CACHE"

if [ -n "$CERT" ]; then
    step "the thing's certificates -> $ETC/certs (readable by $SERVICE_USER only)"
    run install -d -m 0750 -o root -g "$SERVICE_USER" "$ETC/certs"
    run install -m 0640 -o root -g "$SERVICE_USER" "$CERT" "$ETC/certs/thing.cert.pem"
    run install -m 0640 -o root -g "$SERVICE_USER" "$KEY" "$ETC/certs/thing.private.key"
    [ -z "$CA" ] || run install -m 0644 "$CA" "$ETC/certs/root-ca.pem"
fi

config_outputs() {  # the outputs: section for the profile and options
    echo "outputs:"
    if [ -n "$CERT" ]; then
        echo "  - type: mqtt               # AWS IoT Core over MQTT/TLS with the thing's certificate"
        echo "    host: $IOT_ENDPOINT"
        echo "    port: 8883"
        echo "    tls: true"
        echo "    cert: $ETC/certs/thing.cert.pem"
        echo "    key: $ETC/certs/thing.private.key"
        if [ -n "$CA" ]; then echo "    ca: $ETC/certs/root-ca.pem"; fi
        echo "    client_id: $THING_NAME"
        echo "    outbox: $STATE/outbox.sqlite"
    elif [ "$MQTT" = 1 ]; then
        echo "  - type: mqtt               # the local mosquitto"
        echo "    host: 127.0.0.1"
        echo "    port: 1883"
        echo "    outbox: $STATE/outbox.sqlite"
    else
        echo "  - type: jsonl              # one line per frame with detections, to the journal"
        echo "    path: \"-\""
    fi
    if [ "$PROFILE" = deeplens ]; then
        echo "  - type: fifo               # the project stream (PrivateTmp hides /tmp: it lives in /run/roadedge)"
        echo "    path: /run/roadedge/results.mjpeg"
        echo "    width: 858"
        echo "    height: 480"
    else
        echo "  - type: mjpeg              # preview and /metrics on the device only"
        echo "    host: 127.0.0.1"
        echo "    port: 8080"
    fi
}

step "settings $ETC/config.yaml (on top of device_profiles/$PROFILE.yaml)"
if [ -e "$ETC/config.yaml" ]; then
    printf '= keep %s: it exists, and the installer never replaces it\n' "$ETC/config.yaml"
else
    {
        echo "# roadedge settings on top of device_profiles/$PROFILE.yaml, written once by scripts/install-pi.sh and never"
        echo "# replaced by it: edit freely, then sudo systemctl restart roadedge"
        if [ -n "$CERT" ]; then echo "device_name: $THING_NAME"; fi
        config_outputs
    } | write "$ETC/config.yaml" 0640 "root:$SERVICE_USER"
fi

step "systemd unit (deploy/roadedge.service, as is) and the drop-in for this install"
run install -m 0644 "$REPO/deploy/roadedge.service" "$UNIT_DIR/roadedge.service"
run install -d -m 0755 "$UNIT_DIR/roadedge.service.d"
{
    echo "# written by scripts/install-pi.sh: this install's profile, prefix and user"
    echo "[Service]"
    echo "ExecStart="
    echo "ExecStart=$PREFIX/venv/bin/roadedge run --profile $PROFILE --config $ETC/config.yaml"
    if [ "$SERVICE_USER" != roadedge ]; then
        echo "User=$SERVICE_USER"
        echo "Group=$SERVICE_USER"
    fi
} | write "$UNIT_DIR/roadedge.service.d/install.conf" 0644 root:root
run systemctl daemon-reload
[ "$MQTT" = 0 ] || run systemctl enable --now mosquitto.service
if [ "$DRY_RUN" = 0 ] && systemctl is-active --quiet roadedge.service; then
    run systemctl restart roadedge.service  # a reinstall: the new code and unit
fi
run systemctl enable --now roadedge.service
step "done: systemctl status roadedge (READY once the first frame is inferred), journalctl -u roadedge -f"
