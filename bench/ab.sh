#!/usr/bin/env bash
# A/B two builds of jwks-server on the same core, alternating repetitions, to measure
# what one hot-path change gains (the suite's noise is about ±10% per run on a shared
# machine; alternating A and B cancels most of it).
#
#   bench/ab.sh BIN_A BIN_B get|auth|token [ALG] [CONNS] [REPS] [SECONDS]
#
# e.g. bench/ab.sh /tmp/before/jwks-server target/release/jwks-server get RS256 64 8 3
# Prints median req/s, server CPU µs per request and p99 for each, and B/A.
# DB=file gives each server a fresh SQLite file instead of `:memory:`; BENCH_AUTH (e.g.
# "Basic $(printf nobody:pw | base64)") is sent as the Authorization header of `auth`.
# `token` is POST /token client_credentials for a client registered on each server with
# `clients add` (SQLite files: DB=file is implied).
set -euo pipefail
[[ $# -ge 3 ]] || { sed -n 2,13p "$0" >&2; exit 2; }
A=$1 B=$2 MODE=$3 ALG=${4:-RS256} CONNS=${5:-64} REPS=${6:-6} SECS=${7:-3}
[[ $MODE != token ]] || DB=file
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PORT_A=${PORT_A:-18200} PORT_B=${PORT_B:-18201}
SERVER_CPU=${SERVER_CPU:-0} CLIENT_CPU=${CLIENT_CPU:-1}
JWKS_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
export JWKS_MASTER_KEY
HZ=$(getconf CLK_TCK)
OUT=$(mktemp)
DBDIR=$(mktemp -d)
db() { if [[ ${DB:-memory} == file ]]; then echo "$DBDIR/$1.db"; else echo :memory:; fi; }
args=(--host 127.0.0.1 --alg "$ALG")
"$A" --help | grep -q -- --auth-rate-limit && args+=(--auth-rate-limit 0)
"$A" --help | grep -q -- --token-rate-limit && args+=(--token-rate-limit 0)

taskset -c "$SERVER_CPU" "$A" "${args[@]}" --database "$(db a)" --port "$PORT_A" >/dev/null 2>&1 &
PID_A=$!
taskset -c "$SERVER_CPU" "$B" "${args[@]}" --database "$(db b)" --port "$PORT_B" >/dev/null 2>&1 &
PID_B=$!
trap 'kill -CONT $PID_A $PID_B 2>/dev/null; kill $PID_A $PID_B 2>/dev/null; wait 2>/dev/null; rm -rf "$OUT" "$DBDIR"' EXIT
for port in "$PORT_A" "$PORT_B"; do
    until curl -fso /dev/null "http://127.0.0.1:$port/healthz"; do sleep 0.05; done
done
AUTH_A=${BENCH_AUTH:-} AUTH_B=${BENCH_AUTH:-}
case $MODE in
    get) path=/.well-known/jwks.json script=get.lua ;;
    auth) path=/auth script=post.lua ;;
    token)
        path=/token script=token.lua
        register() { # binary database
            local secret
            secret=$("$1" --database "$2" clients add bench-client 2>/dev/null | sed -n 's/^client_secret=//p')
            printf 'Basic %s' "$(printf 'bench-client:%s' "$secret" | base64 -w0)"
        }
        AUTH_A=$(register "$A" "$(db a)") AUTH_B=$(register "$B" "$(db b)")
        for port in "$PORT_A" "$PORT_B"; do
            auth=$AUTH_A
            [[ $port == "$PORT_A" ]] || auth=$AUTH_B
            until curl -fso /dev/null -H "Authorization: $auth" -d grant_type=client_credentials \
                "http://127.0.0.1:$port/token"; do sleep 0.2; done
        done
        ;;
    *) echo "mode: get, auth or token" >&2; exit 2 ;;
esac

one() { # label pid port other-pid
    local c0 c1 line
    kill -STOP "$4"
    c0=$(awk '{print $14 + $15}' "/proc/$2/stat")
    local auth=$AUTH_A
    [[ $1 == A ]] || auth=$AUTH_B
    line=$(BENCH_AUTH=$auth taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$BENCH/$script" "http://127.0.0.1:$3$path" | grep '^BENCH ')
    c1=$(awk '{print $14 + $15}' "/proc/$2/stat")
    kill -CONT "$4"
    echo "$1 ${line#BENCH } ticks=$((c1 - c0)) hz=$HZ"
}
one A "$PID_A" "$PORT_A" "$PID_B" >/dev/null
one B "$PID_B" "$PORT_B" "$PID_A" >/dev/null
for _ in $(seq 1 "$REPS"); do
    one A "$PID_A" "$PORT_A" "$PID_B" >>"$OUT"
    one B "$PID_B" "$PORT_B" "$PID_A" >>"$OUT"
done
python3 - "$OUT" <<'PY'
import statistics as st, sys
d = {"A": [], "B": []}
for line in open(sys.argv[1]):
    label, *kv = line.split()
    kv = dict(x.split("=", 1) for x in kv)
    cpu = int(kv["ticks"]) / int(kv["hz"]) * 1e6 / int(kv["requests"])
    d[label].append((float(kv["rps"]), cpu, int(kv["p99_us"]) / 1000))
med = {k: [st.median(x[i] for x in v) for i in range(3)] for k, v in d.items()}
for k, (rps, cpu, p99) in med.items():
    print(f"{k}: {rps:,.0f} req/s, {cpu:.2f} µs CPU/req, p99 {p99:.2f} ms  (CPU/req per rep: "
          + " ".join(f"{x[1]:.1f}" for x in d[k]) + ")")
a, b = med["A"], med["B"]
print(f"B/A: req/s {b[0] / a[0]:.3f}, CPU/req {b[1] / a[1]:.3f}, p99 {b[2] / a[2]:.3f}")
PY
