#!/bin/sh
# The browser the console tests drive: Debian's chromium (Playwright's own downloads are not
# used). Run by `make test` and `make screenshots`; does nothing when chromium is there.
#   AITBC_CHROMIUM=/path/to/chromium   use that one instead
set -eu
if [ -n "${AITBC_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup-browser: installing Debian's chromium for the console tests ..."
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    exit 0
fi
echo "setup-browser: no chromium; install it (sudo apt-get install chromium) or set" \
     "AITBC_CHROMIUM. The console tests skip without it (CI fails)." >&2
