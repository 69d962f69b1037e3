#!/usr/bin/env bash
# Install Debian packages for the build: `apt-install.sh WHAT PACKAGE...` (WHAT names the
# missing tool in messages). As root, or with sudo; a clear error when neither works.
set -euo pipefail
what="$1"
shift
echo "$what is missing: installing the Debian package(s) $*" >&2
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "error: cannot install $what without root; run: apt-get install -y $*" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: apt-get not found; install $what by hand ($*) and retry" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
if ! $SUDO apt-get install -y -qq --no-install-recommends "$@"; then
  echo "error: 'apt-get install $*' failed; install $what by hand and retry" >&2
  exit 1
fi
