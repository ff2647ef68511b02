#!/usr/bin/env bash
# Debian's Chromium and ChromeDriver for the browser tests, installed when missing and possible
# (as root, or with passwordless sudo). Never fails: without them the browser tests say they were
# skipped, and under CI=true they fail instead.
set -uo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if [ "$(id -u)" = 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "install-chromium: not root and no passwordless sudo; browser tests will be skipped" \
         "(install the Debian packages chromium and chromium-driver to run them)" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "install-chromium: no apt-get here; install Chromium and ChromeDriver to run the browser tests" >&2
    exit 0
fi
echo "install-chromium: installing Debian's chromium and chromium-driver for the browser tests" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null 2>&1 || true
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1 \
    || echo "install-chromium: apt-get install failed; browser tests will be skipped" >&2
exit 0
