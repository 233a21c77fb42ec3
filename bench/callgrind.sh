#!/usr/bin/env bash
# Instructions (or system calls) per request of one build, counted rather than timed:
# the same binary and requests give the same count whatever else the machine runs, so it
# measures a hot-path change on a busy machine where req/s cannot.
#
#   bench/callgrind.sh BIN token|auth|get [REQUESTS] [ALG]
#
# BIN is the server (ES256 by default, a fresh SQLite file, rate limits off; for `token`,
# a client registered with `clients add`) or the ceiling (`.../examples/bench_ceiling`,
# which answers any POST as the server's `/auth`). It runs on CPU 0 under
# `valgrind --tool=callgrind`; after a warm-up the counters are zeroed, REQUESTS
# (default 1000) keep-alive requests are sent from one connection, and the counters are
# dumped: it prints user-space instructions per request and the top functions
# (inclusive counts in $OUT/annotate.txt).
# SYSCALLS=1 runs BIN without valgrind and counts its system calls per request over the
# same window with `strace -c -f` instead (callgrind does not see the kernel).
# OUT (default a temp dir) keeps the files.
set -euo pipefail
[[ $# -ge 2 ]] || { sed -n 2,18p "$0" >&2; exit 2; }
BIN=$1 MODE=$2 N=${3:-1000} ALG=${4:-ES256}
PORT=${PORT:-18300}
OUT=${OUT:-$(mktemp -d)}
SYSCALLS=${SYSCALLS:-0}
mkdir -p "$OUT"
JWKS_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
export JWKS_MASTER_KEY RUST_LOG=warn
DB=$OUT/db.sqlite
rm -f "$DB"*
if [[ $(basename "$BIN") == bench_ceiling ]]; then
    CEILING=1
    echo '{"keys":[]}' >"$OUT/jwks.json"
    args=(serve --port "$PORT" --alg "$ALG" --jwks "$OUT/jwks.json")
    [[ $MODE != token ]] || { echo "the ceiling has no /token: use auth" >&2; exit 2; }
else
    CEILING=0
    args=(--host 127.0.0.1 --port "$PORT" --alg "$ALG" --database "$DB"
          --auth-rate-limit 0 --register-rate-limit 0 --token-rate-limit 0)
fi

if [[ $SYSCALLS == 1 ]]; then
    taskset -c 0 "$BIN" "${args[@]}" >"$OUT/server.log" 2>&1 &
else
    taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out.%p" \
        "$BIN" "${args[@]}" >"$OUT/server.log" 2>&1 &
fi
PID=$!
trap 'kill $PID 2>/dev/null; wait 2>/dev/null' EXIT
until curl -fso /dev/null "http://127.0.0.1:$PORT/.well-known/jwks.json"; do
    kill -0 $PID 2>/dev/null || { cat "$OUT/server.log" >&2; exit 1; }
    sleep 0.2
done
AUTH=
if [[ $MODE == token ]]; then
    secret=$("$BIN" --database "$DB" clients add bench-client 2>/dev/null | sed -n 's/^client_secret=//p')
    AUTH="Basic $(printf 'bench-client:%s' "$secret" | base64 -w0)"
    until curl -fso /dev/null -H "Authorization: $AUTH" -d grant_type=client_credentials \
        "http://127.0.0.1:$PORT/token"; do sleep 0.2; done
fi

taskset -c 1 python3 - "$MODE" "$PORT" "$N" "$PID" "$AUTH" "$SYSCALLS" "$OUT/strace.txt" <<'PY'
import http.client, signal, subprocess, sys, time
mode, port, n, pid, auth, syscalls, trace = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6] == "1", sys.argv[7]
conn = http.client.HTTPConnection("127.0.0.1", port)
if mode == "token":
    method, path, body = "POST", "/token", b"grant_type=client_credentials"
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": auth}
elif mode == "auth":
    method, path, body, headers = "POST", "/auth", b"", {"Content-Length": "0"}
else:
    method, path, body, headers = "GET", "/.well-known/jwks.json", None, {}
def run(count):
    for _ in range(count):
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        r.read()
        assert r.status == 200, r.status
run(200)
if syscalls:
    tracer = subprocess.Popen(["strace", "-c", "-f", "-o", trace, "-p", pid])
    time.sleep(1)  # attached to every thread before the window opens
    run(n)
    tracer.send_signal(signal.SIGINT)
    tracer.wait()
else:
    subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
    run(n)
    subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
PY
kill $PID
wait $PID 2>/dev/null || true
trap - EXIT
what=$MODE
[[ $CEILING == 0 ]] || what="ceiling $MODE"
if [[ $SYSCALLS == 1 ]]; then
    total=$(awk '$NF == "total" {print $4}' "$OUT/strace.txt")
    echo "$what $ALG: $(python3 -c "print(round($total / $N, 2))") system calls per request ($total over $N; $OUT/strace.txt)"
    sed -n '1,/total/p' "$OUT/strace.txt" | head -25
    exit 0
fi
# The dump of `-d` has a part suffix; the final one (at exit) is ignored.
dump=$(ls "$OUT"/callgrind.out.$PID.* | sort | tail -1)
total=$(sed -n 's/^summary: //p;s/^totals: //p' "$dump" | head -1 | awk '{print $1}')
echo "$what $ALG: $((total / N)) instructions per request ($total over $N requests; $dump)"
callgrind_annotate --inclusive=yes "$dump" >"$OUT/annotate.txt" 2>/dev/null || true
callgrind_annotate "$dump" 2>/dev/null | sed -n '/Ir/,$p' | head -40
