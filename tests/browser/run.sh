#!/usr/bin/env bash
# The browser test (see README.md beside this file): OpenID Connect sign-in in Debian's
# headless chromium, driven by playwright-core, against a relying party built on
# openid-client. Installs the pinned npm packages (npm ci; never a browser download),
# installs chromium with apt-get when it is missing and we are root, builds the server
# (cargo build --release, unless JWKS_SERVER_BIN names a binary), then runs
# `node --test`. Exits with its status; a failing scenario prints its server's log.
#
# Environment: JWKS_SERVER_BIN (a built server), CHROMIUM_PATH (default /usr/bin/chromium),
# SCREENSHOT_DIR (default docs/ of the repository).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
HERE=$ROOT/tests/browser
CHROMIUM=${CHROMIUM_PATH:-/usr/bin/chromium}

if [[ ! -x $CHROMIUM ]]; then
    if [[ $CHROMIUM == /usr/bin/chromium && $(id -u) == 0 ]]; then
        echo "installing Debian's chromium"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "no chromium at $CHROMIUM: install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH" >&2
        exit 1
    fi
fi
"$CHROMIUM" --version 2>/dev/null | grep -i chromium

# playwright-core downloads no browser; the variable guards against a dependency that would.
(cd "$HERE" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)

if [[ -z ${JWKS_SERVER_BIN:-} ]]; then
    cargo build --release -q -j2 --bin jwks-server
    export JWKS_SERVER_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/jwks-server
fi
[[ -x $JWKS_SERVER_BIN ]] || { echo "JWKS_SERVER_BIN=$JWKS_SERVER_BIN is not an executable" >&2; exit 1; }

unset JWKS_MASTER_KEY_FILE JWKS_MASTER_KEY NOT_MY_KEY
# One scenario at a time: each starts a server and a browser, and CI has two cores.
cd "$HERE"
node --test --test-concurrency=1 signin.test.mjs
