#!/usr/bin/env bash
# Make sure /usr/bin/chromium exists for the browser test: install Debian's package when it is
# missing (playwright-core drives it; we never download a browser build of our own).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
echo "chromium is missing: installing the Debian package 'chromium'" >&2
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "error: cannot install chromium without root; run: apt-get install -y chromium" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: apt-get not found; install Chromium so that /usr/bin/chromium exists" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
if ! $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation; then
  echo "error: 'apt-get install chromium' failed; install it by hand and retry" >&2
  exit 1
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "error: the chromium package did not provide /usr/bin/chromium" >&2
  exit 1
fi
