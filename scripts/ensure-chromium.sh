#!/usr/bin/env bash
# Make sure /usr/bin/chromium exists for the browser test: install Debian's package when it is
# missing (playwright-core drives it; we never download a browser build of our own).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
"$(dirname "$0")/apt-install.sh" chromium chromium fonts-liberation
if [ ! -x /usr/bin/chromium ]; then
  echo "error: the chromium package did not provide /usr/bin/chromium" >&2
  exit 1
fi
