#!/usr/bin/env bash
# The OpenAPI contract, fuzzed: starts the debug jwks-server on a free 127.0.0.1 port
# (`--database :memory:`, rate limits off) and runs schemathesis against the document it
# serves at /openapi.json, with every check schemathesis has, over every operation, with
# a fixed seed and a bounded number of examples per operation. Any failure exits non-zero.
#
# Once per configuration below: each algorithm's JWK shape is validated against the
# document, and `--auth users` exercises the 401 answers of /auth. schemathesis.toml
# (schemathesis-users.toml for `--auth users`) beside this file names the operations that
# may answer 400 to schema-valid data, and why.
#
#   tests/contract/run.sh               # cargo build, then the runs below
#   JWKS_SERVER_BIN=path tests/contract/run.sh   # an existing binary
#   CONTRACT_VENV=dir CONTRACT_SEED=n CONTRACT_EXAMPLES=n override the defaults
#
# schemathesis comes from PyPI, pinned with hashes in requirements.txt beside this file
# (regenerate from requirements.in with `uv pip compile requirements.in --generate-hashes
# --universal -o requirements.txt`); it is installed into a venv under target/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

seed="${CONTRACT_SEED:-14}"
examples="${CONTRACT_EXAMPLES:-100}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
venv="${CONTRACT_VENV:-$target_dir/contract-venv}"
configurations=(
    "--alg RS256 --auth open"
    "--alg ES256 --auth users"
    "--alg EdDSA --auth open"
)

# The venv, reinstalled whenever requirements.txt changes.
stamp="$venv/.requirements.sha256"
wanted="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/schemathesis" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes \
        --only-binary :all: -r "$here/requirements.txt"
    echo "$wanted" > "$stamp"
fi
"$venv/bin/schemathesis" --version

bin="${JWKS_SERVER_BIN:-}"
if [ -z "$bin" ]; then
    cargo build --quiet --bin jwks-server
    bin="$target_dir/debug/jwks-server"
fi

work="$(mktemp -d)"
server_pid=""
stop_server() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
trap 'stop_server; rm -rf "$work"' EXIT

failed=0
for configuration in "${configurations[@]}"; do
    log="$work/server.log"
    # Port 0: the server picks a free port and logs it; no race with other listeners.
    # shellcheck disable=SC2086 # the configuration is a list of flags
    "$bin" --host 127.0.0.1 --port 0 --database :memory: \
        --auth-rate-limit 0 --register-rate-limit 0 --token-rate-limit 0 --authorize-rate-limit 0 $configuration >"$log" 2>&1 &
    server_pid=$!
    addr=""
    for _ in $(seq 1 300); do
        addr="$(sed -n 's/.* listening addr=\([0-9.:]*\).*/\1/p' "$log" | head -n 1)"
        [ -n "$addr" ] && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$addr" ]; then
        echo "jwks-server did not start ($configuration):" >&2
        cat "$log" >&2
        exit 1
    fi
    printf '\n== schemathesis against %s (%s)\n' "$addr" "$configuration"
    settings="$here/schemathesis.toml"
    case "$configuration" in
        *"--auth users"*) settings="$here/schemathesis-users.toml" ;;
    esac
    started=$(date +%s)
    status=0
    # From the scratch directory: schemathesis keeps a cache in the working directory.
    (cd "$work" && "$venv/bin/schemathesis" --config-file "$settings" run "http://$addr/openapi.json" \
        --checks all \
        --mode all \
        --phases examples,coverage,fuzzing,stateful \
        --seed "$seed" \
        --max-examples "$examples" \
        --workers 1 \
        --generation-database none \
        --no-color) || status=$?
    echo "schemathesis exited $status in $(( $(date +%s) - started ))s ($configuration)"
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "jwks-server died during the run ($configuration):" >&2
        tail -n 50 "$log" >&2
        status=1
    fi
    stop_server
    [ "$status" -eq 0 ] || failed=1
done
exit "$failed"
