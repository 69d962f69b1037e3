#!/usr/bin/env bash
# Make sure a nats-server binary exists: install Debian's package when it is missing.
set -euo pipefail
if command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || [ -x /usr/bin/nats-server ]; then
  exit 0
fi
echo "nats-server is missing: installing the Debian package 'nats-server'" >&2
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "error: cannot install nats-server without root; run: apt-get install -y nats-server" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: apt-get not found; install nats-server (https://nats.io) and put it on PATH" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
if ! $SUDO apt-get install -y -qq nats-server; then
  echo "error: 'apt-get install nats-server' failed; install it by hand and retry" >&2
  exit 1
fi
