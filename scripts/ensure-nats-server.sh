#!/usr/bin/env bash
# Make sure a nats-server binary exists: install Debian's package when it is missing.
set -euo pipefail
if command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || [ -x /usr/bin/nats-server ]; then
  exit 0
fi
"$(dirname "$0")/apt-install.sh" nats-server nats-server
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ] && [ ! -x /usr/bin/nats-server ]; then
  echo "error: the nats-server package did not provide a nats-server binary" >&2
  exit 1
fi
