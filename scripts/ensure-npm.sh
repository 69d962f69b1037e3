#!/usr/bin/env bash
# Make sure node and npm exist for the browser test's playwright-core: Debian's packages when
# they are missing.
set -euo pipefail
if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then
  exit 0
fi
"$(dirname "$0")/apt-install.sh" "node and npm" nodejs npm
if ! command -v npm >/dev/null 2>&1; then
  echo "error: the npm package did not provide npm" >&2
  exit 1
fi
