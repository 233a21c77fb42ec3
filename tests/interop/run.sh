#!/usr/bin/env bash
# Interop check with an independent client library (authlib over requests; see README):
# discovery, client_credentials, RFC 9068 validation, and the authorization code flow
# with PKCE as a relying party (ID token validated by authlib);
# builds the server, starts it on a free loopback port with a temporary SQLite file,
# registers a client with the CLI, runs pytest in a venv, and stops the server. Exits
# with pytest's status. VENV (default: tests/interop/.venv) is reused between runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
HERE=$ROOT/tests/interop
VENV=${VENV:-$HERE/.venv}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

if [[ ! -x $VENV/bin/pytest ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check --require-hashes --only-binary :all: \
        -r "$HERE/requirements.txt"
fi
cargo build -q --bin jwks-server
BIN=$TARGET/debug/jwks-server

TMP=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
unset JWKS_MASTER_KEY_FILE JWKS_MASTER_KEY NOT_MY_KEY
export JWKS_DATABASE=$TMP/interop.db
ISSUER=http://127.0.0.1:$PORT
"$BIN" --host 127.0.0.1 --port "$PORT" --issuer "$ISSUER" --alg ES256 >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$ISSUER/readyz" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log" >&2; exit 1; }
    sleep 0.1
done

# Registered while the server runs; the server picks it up within 2 seconds.
SECRET=$("$BIN" clients add interop-client --scope read --scope write --audience https://api.example \
    | sed -n 's/^client_secret=//p')
sleep 2

INTEROP_ISSUER=$ISSUER INTEROP_CLIENT_ID=interop-client INTEROP_CLIENT_SECRET=$SECRET \
    INTEROP_AUDIENCE=https://api.example \
    "$VENV/bin/pytest" -q -p no:cacheprovider "$HERE/test_authlib.py"
