#!/bin/sh
# Install the AITBC miner agent and coordinator into their own virtualenv, the way Debian 12 and
# Ubuntu 24.04 want it: their system Python refuses `pip install` (PEP 668,
# "externally-managed-environment"), and mixing pip packages into /usr breaks apt's.
#
#   sudo ./scripts/install.sh                     # from this checkout
#   sudo ./scripts/install.sh dist/aitbc_miner_agent-0.2.0-py3-none-any.whl
#
# What it does (run it again to upgrade; it never overwrites a config you edited):
#   /opt/aitbc-miner-agent/                  the virtualenv, with both programs and their deps
#   /usr/local/bin/aitbc-agent, aitbc-coordinator        symlinks into it (the units' ExecStart)
#   /usr/local/share/doc/aitbc-miner-agent   symlink to the docs (the units' Documentation=)
#   /etc/systemd/system/aitbc-*.service      the unit files (not enabled: you enable one)
#   /etc/aitbc-agent/agent.toml              the example config, when there is none yet
#   users aitbc-agent and aitbc-coordinator  system users without a shell, when missing
#
# Options:
#   --prefix DIR   the virtualenv (default /opt/aitbc-miner-agent)
#   --root DIR     install under DIR instead of / (for packaging and tests: no users are made
#                  and systemd is not told)
#   --python EXE   the interpreter, 3.11 or newer (default python3)
set -eu

PREFIX=/opt/aitbc-miner-agent
ROOT=
PYTHON=python3
SOURCE=
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX=$2; shift 2 ;;
        --root) ROOT=${2%/}; shift 2 ;;
        --python) PYTHON=$2; shift 2 ;;
        -h|--help) sed -n '2,24s/^# \{0,1\}//p' "$0"; exit 0 ;;
        -*) echo "install.sh: unknown option $1 (see --help)" >&2; exit 64 ;;
        *) SOURCE=$1; shift ;;
    esac
done
[ -n "$SOURCE" ] || SOURCE=$(cd "$(dirname "$0")/.." && pwd)
case "$SOURCE" in /*) ;; *) SOURCE=$(pwd)/$SOURCE ;; esac

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null 2>&1 || die "no $PYTHON: install Python 3.11 or newer (apt install python3)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$("$PYTHON" -V 2>&1) is too old: the agent needs Python 3.11 or newer"
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null \
    || die "$PYTHON cannot make a virtualenv: apt install python3-venv"
[ -e "$SOURCE" ] || die "nothing to install at $SOURCE"

VENV=$ROOT$PREFIX
if [ ! -x "$VENV/bin/python" ]; then
    say "creating the virtualenv $PREFIX"
    "$PYTHON" -m venv "$VENV"
fi
say "installing $(basename "$SOURCE") into $PREFIX (and its dependencies, from PyPI)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$SOURCE"

SHARE=$PREFIX/share/aitbc-miner-agent
install -d "$ROOT/usr/local/bin" "$ROOT/usr/local/share/doc" "$ROOT/etc/systemd/system"
for program in aitbc-agent aitbc-coordinator; do
    ln -sfn "$PREFIX/bin/$program" "$ROOT/usr/local/bin/$program"
done
ln -sfn "$PREFIX/share/doc/aitbc-miner-agent" "$ROOT/usr/local/share/doc/aitbc-miner-agent"
for unit in aitbc-agent.service aitbc-coordinator.service; do
    install -m 0644 "$ROOT$SHARE/systemd/$unit" "$ROOT/etc/systemd/system/$unit"
done
install -d -m 0755 "$ROOT/etc/aitbc-agent"
if [ -e "$ROOT/etc/aitbc-agent/agent.toml" ]; then
    say "keeping your /etc/aitbc-agent/agent.toml (the new example: $SHARE/systemd/agent.toml.example)"
else
    install -m 0644 "$ROOT$SHARE/systemd/agent.toml.example" "$ROOT/etc/aitbc-agent/agent.toml"
    say "wrote /etc/aitbc-agent/agent.toml from the example: edit it"
fi

if [ -z "$ROOT" ]; then
    for user in aitbc-agent aitbc-coordinator; do
        id "$user" >/dev/null 2>&1 \
            || useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
    done
    systemctl daemon-reload 2>/dev/null || true
fi

say "installed $("$VENV/bin/aitbc-agent" --version 2>/dev/null || echo aitbc-agent)"
cat <<EOF
Next, on a GPU host (docs: /usr/local/share/doc/aitbc-miner-agent/operations.md):
  sudoedit /etc/aitbc-agent/agent.toml
  sudo install -m 0600 /dev/stdin /etc/aitbc-agent/api-key <<< 'the-miner-key'
  aitbc-agent config check --config /etc/aitbc-agent/agent.toml
  sudo systemctl enable --now aitbc-agent
EOF
