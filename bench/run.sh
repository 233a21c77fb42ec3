#!/usr/bin/env bash
# The benchmark suite of issue 6, in one command: bench/run.sh (QUICK=1 for a ~3 minute
# run). See BENCHMARKS.md for what it measures and how to read it.
#
# The server under test runs pinned to SERVER_CPU, wrk (one thread, keep-alive) pinned to
# CLIENT_CPU; a bench-only ceiling (examples/bench_ceiling.rs) runs on the same core as
# the server, in the same run, so every figure is also a ratio that holds on a noisy
# machine. Traffic goes to 127.0.0.1 only.
#
# Environment knobs (defaults: full run / QUICK=1):
#   DURATION  seconds per measured repetition   (6 / 2)
#   REPS      repetitions per case               (3 / 2)
#   WARMUP    seconds of unmeasured warm-up      (2 / 1)
#   COLD_REPS cold starts per mode               (7 / 3)
#   SOAK_SECS constant-load memory soak, 0 = off (60 / 0); the issue's figure is 600
#   SIGN_SECS seconds of each raw signing loop   (3 / 1)
#   SCENARIOS which scenarios to run             ("1 2 3 4 5 6 7 8 9"; e.g. SCENARIOS=7 for one)
#   SERVER_CPU / CLIENT_CPU (0 / 1), PORT / CEIL_PORT (18080 / 18081), OUT (results dir)
#   PLAIN_PORT (18083): scenario 8's same build over plain HTTP
#   ADMIN_PORT (18082): scenario 9 reads the server's /metrics there
#   S9_SECS   seconds of each rotation window of scenario 9 (20 / 10)
#   S9_WARMUP seconds of load before it, rotating (6 / 4)
#   S9_LOADS  scenario 9's loads ("saturated neveridle")
#   S9_HOG_NICE the nice of the busy loop of scenario 9's neveridle load (0)
#   S9_PATH   what scenario 9's load requests: jwks or auth (jwks)
#   BIN_BEFORE a second server binary for scenario 9 (the "before" build); unset: skipped
#   NO_BUILD=1 skips cargo build (uses what target/release holds)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BENCH=$ROOT/bench

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    : "${DURATION:=2}" "${REPS:=2}" "${WARMUP:=1}" "${COLD_REPS:=3}" "${SOAK_SECS:=0}" "${SIGN_SECS:=1}"
    : "${S9_SECS:=10}" "${S9_WARMUP:=4}"
else
    : "${DURATION:=6}" "${REPS:=3}" "${WARMUP:=2}" "${COLD_REPS:=7}" "${SOAK_SECS:=60}" "${SIGN_SECS:=3}"
    : "${S9_SECS:=20}" "${S9_WARMUP:=6}"
fi
SCENARIOS=${SCENARIOS:-"1 2 3 4 5 6 7 8 9"}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-18080}
CEIL_PORT=${CEIL_PORT:-18081}
ADMIN_PORT=${ADMIN_PORT:-18082}
PLAIN_PORT=${PLAIN_PORT:-18083}
S9_LOADS=${S9_LOADS:-"saturated neveridle"}
S9_HOG_NICE=${S9_HOG_NICE:-0}
S9_PATH=${S9_PATH:-jwks}
BIN_BEFORE=${BIN_BEFORE:-}
OUT=${OUT:-$BENCH/results/$(date -u +%Y%m%dT%H%M%SZ)}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release/jwks-server
CEIL=$TARGET_DIR/release/examples/bench_ceiling
CLK_TCK=$(getconf CLK_TCK)
HOST=127.0.0.1
JWKS_PATH=/.well-known/jwks.json

mkdir -p "$OUT"
RESULTS=$OUT/results.txt
: >"$RESULTS"
TMP=$(mktemp -d)
SERVER_PID=
CEIL_PID=
TWIN_PID=
HOG_PID=
STARTED=$(date +%s)

log() { printf '[%4ds] %s\n' $(($(date +%s) - STARTED)) "$*" >&2; }
has() { [[ " $SCENARIOS " == *" $1 "* ]]; }

cleanup() {
    stop_hog
    stop_server
    stop_ceiling
    stop_twin
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools and build -------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
    log "installing wrk"
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
for tool in taskset curl python3; do
    command -v $tool >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done
if [[ ${NO_BUILD:-0} != 1 ]]; then
    log "building release (jwks-server and the ceiling)"
    cargo build --release -j2 --bin jwks-server >&2
    cargo build --release -j2 --example bench_ceiling >&2
fi
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true

# --- what this build of the server supports (flags come and go while it is developed) --
HELP=$("$BIN" --help)
supports() { grep -q -- "$1" <<<"$HELP"; }
base_args() { # a build's --help: prints the flags every start gets, one a line
    printf '%s\n' --host "$HOST" --port "$PORT" --log-format text
    local flag
    for flag in --auth-rate-limit --register-rate-limit --token-rate-limit; do
        if grep -q -- "$flag" <<<"$1"; then printf '%s\n' "$flag" 0; fi
    done
}
mapfile -t COMMON_ARGS < <(base_args "$HELP")
# The master key seals private keys at rest; any fixed random one will do for a bench.
JWKS_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
export JWKS_MASTER_KEY
export RUST_LOG=${RUST_LOG:-info}

# A SQLite file if this build has one, else memory (then scenarios 4b and 6 skip).
DB_MODE=memory
if curl -so /dev/null "http://$HOST:$PORT/"; then
    echo "bench: something already listens on port $PORT; set PORT" >&2
    exit 1
fi
"$BIN" "${COMMON_ARGS[@]}" --database "$TMP/probe.db" >"$TMP/probe.log" 2>&1 &
probe=$!
for _ in $(seq 1 100); do
    if curl -fso /dev/null "http://$HOST:$PORT$JWKS_PATH"; then DB_MODE="file"; break; fi
    kill -0 $probe 2>/dev/null || break
    sleep 0.1
done
kill $probe 2>/dev/null || true
wait $probe 2>/dev/null || true
DB_COUNTER=0
DB_ARGS=()
next_db() { # sets DB_ARGS to a fresh database (a new file, or memory)
    DB_COUNTER=$((DB_COUNTER + 1))
    if [[ $DB_MODE == file ]]; then
        DB_ARGS=(--database "$TMP/db-$DB_COUNTER.db")
    else
        DB_ARGS=(--database :memory:)
    fi
}

# What else the machine was doing: compilers running and the load average, at the start
# and the end of the run (the figures of a busy machine are read differently).
machine_load() { echo "rustc=$(pgrep -c rustc || true) loadavg=$(cut -d' ' -f1 /proc/loadavg)"; }
{
    echo "meta machine nproc=$(nproc) cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs | tr ' ' '_') kernel=$(uname -r)"
    echo "meta config quick=$QUICK duration=$DURATION reps=$REPS warmup=$WARMUP db=$DB_MODE commit=$(git rev-parse --short HEAD 2>/dev/null || echo none)"
    echo "meta load at=start $(machine_load)"
} >>"$RESULTS"
log "database mode: $DB_MODE; results in $OUT"

# --- processes -------------------------------------------------------------------------
wait_200() { # url [seconds]
    local deadline=$(($(date +%s) + ${2:-60}))
    until curl -kfso /dev/null "$1"; do
        (($(date +%s) < deadline)) || return 1
        sleep 0.05
    done
}

start_server() { # name, extra server args...
    local name=$1
    shift
    next_db
    taskset -c "$SERVER_CPU" "$BIN" "${COMMON_ARGS[@]}" "${DB_ARGS[@]}" "$@" >"$OUT/server-$name.log" 2>&1 &
    SERVER_PID=$!
    wait_200 "$(url_of "$PORT")$JWKS_PATH" || { echo "bench: server $name did not start" >&2; tail "$OUT/server-$name.log" >&2; exit 1; }
}

stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill -CONT "$SERVER_PID" 2>/dev/null || true
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}

start_ceiling() { # alg jwks-file [ceiling args: --tls-cert PEM --tls-key PEM]
    stop_ceiling
    local alg=$1 jwks=$2
    shift 2
    taskset -c "$SERVER_CPU" "$CEIL" serve --port "$CEIL_PORT" --alg "$alg" --jwks "$jwks" "$@" 2>>"$OUT/ceiling.log" &
    CEIL_PID=$!
    wait_200 "$(url_of "$CEIL_PORT")$JWKS_PATH" 30
}

stop_ceiling() {
    if [[ -n $CEIL_PID ]]; then
        kill "$CEIL_PID" 2>/dev/null || true
        wait "$CEIL_PID" 2>/dev/null || true
        CEIL_PID=
    fi
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
key_count() { curl -fs "http://$HOST:$1$JWKS_PATH" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["keys"]))'; }

# The plain-HTTP twin of scenario 8: the same build, measured in measure's alternation as
# target `plain` when TWIN_PID is set.
stop_twin() {
    if [[ -n $TWIN_PID ]]; then
        kill "$TWIN_PID" 2>/dev/null || true
        wait "$TWIN_PID" 2>/dev/null || true
        TWIN_PID=
    fi
}

# Scenario 9's CPU hog: a busy loop on the server core at nice S9_HOG_NICE, so that the
# core never idles. At nice 0 it takes half the core from the server but leaves a
# SCHED_IDLE thread 3/2051 of it; at nice 19 it takes only the server's gaps plus ~1.5 %,
# but a SCHED_IDLE thread then gets a fifth of whatever gaps the server leaves.
stop_hog() {
    if [[ -n $HOG_PID ]]; then
        kill "$HOG_PID" 2>/dev/null || true
        wait "$HOG_PID" 2>/dev/null || true
        HOG_PID=
    fi
}

# The base URL of a port: https for the ports listed in HTTPS_PORTS (scenario 8), else http.
url_of() { if [[ " ${HTTPS_PORTS:-} " == *" $1 "* ]]; then echo "https://$HOST:$1"; else echo "http://$HOST:$1"; fi; }

# One wrk run against a target; appends a `run` line with the target's CPU time around it.
# With `bg` (a pid), also records that process's CPU time: a neighbour left running.
run_wrk() { # case target pid port path script conns rep [bg]
    local case=$1 target=$2 pid=$3 port=$4 path=$5 script=$6 conns=$7 rep=$8 bg=${9:-}
    local timeout=10s out c0 c1 b0=0 b1=0 line extra=
    [[ $case == s6_auth_creds ]] && timeout=60s
    [[ -n $bg ]] && b0=$(cpu_ticks "$bg")
    c0=$(cpu_ticks "$pid")
    out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d"${DURATION}s" --timeout "$timeout" -s "$BENCH/$script" "$(url_of "$port")$path")
    c1=$(cpu_ticks "$pid")
    [[ -n $bg ]] && b1=$(cpu_ticks "$bg") && extra=" bg_ticks=$((b1 - b0))"
    line=$(grep '^BENCH ' <<<"$out") || { echo "bench: wrk gave no result: $out" >&2; exit 1; }
    echo "run case=$case target=$target conns=$conns rep=$rep ${line#BENCH } cpu_ticks=$((c1 - c0)) clk_tck=$CLK_TCK$extra" >>"$RESULTS"
}

# measure case path script conns [hook]: a warm-up, then REPS repetitions against the
# server and, when one runs, the ceiling, alternating (server, ceiling, server, ...) so
# that a neighbour's compile slows both alike. While the ceiling is measured the server is
# stopped (SIGSTOP) unless STOP_SERVER=0: a server whose keys rotate every 2 s must keep
# running, or its published set would drain while it sleeps; then the ceiling's lines
# carry the server's own CPU time as bg_ticks. `hook` (a function name) runs before each
# server repetition. With TWIN_PID set (scenario 8), each repetition also measures the
# plain-HTTP twin on PLAIN_PORT (target `plain`), the server stopped meanwhile.
STOP_SERVER=1
pause_server() { if [[ $STOP_SERVER == 1 ]]; then kill -STOP "$SERVER_PID"; fi; }
resume_server() { if [[ $STOP_SERVER == 1 ]]; then kill -CONT "$SERVER_PID"; fi; }
measure() {
    local case=$1 path=$2 script=$3 conns=$4 hook=${5:-} rep
    local warm="-t1 -c$conns -d${WARMUP}s --timeout 10s -s $BENCH/$script"
    log "$case: $conns connections"
    # shellcheck disable=SC2086 # $warm is a list of wrk flags
    taskset -c "$CLIENT_CPU" wrk $warm "$(url_of "$PORT")$path" >/dev/null
    if [[ -n $CEIL_PID ]]; then
        pause_server
        # shellcheck disable=SC2086
        taskset -c "$CLIENT_CPU" wrk $warm "$(url_of "$CEIL_PORT")$path" >/dev/null
        resume_server
    fi
    if [[ -n $TWIN_PID ]]; then
        pause_server
        # shellcheck disable=SC2086
        taskset -c "$CLIENT_CPU" wrk $warm "$(url_of "$PLAIN_PORT")$path" >/dev/null
        resume_server
    fi
    for rep in $(seq 1 "$REPS"); do
        [[ -n $hook ]] && $hook
        run_wrk "$case" server "$SERVER_PID" "$PORT" "$path" "$script" "$conns" "$rep"
        if [[ -n $CEIL_PID ]]; then
            pause_server
            local bg=
            [[ $STOP_SERVER == 1 ]] || bg=$SERVER_PID
            run_wrk "$case" ceiling "$CEIL_PID" "$CEIL_PORT" "$path" "$script" "$conns" "$rep" $bg
            resume_server
        fi
        if [[ -n $TWIN_PID ]]; then
            pause_server
            run_wrk "$case" plain "$TWIN_PID" "$PLAIN_PORT" "$path" "$script" "$conns" "$rep"
            resume_server
        fi
    done
}

# The conditional GET (every answer a 304) alternating with the plain GET (200) on the
# same server, so the two costs compare within one stretch of machine noise.
measure_304() {
    local warm="-t1 -c64 -d${WARMUP}s --timeout 10s" url="http://$HOST:$PORT$JWKS_PATH" rep
    log "get304_c64_k1 and get200_c64_k1, alternating: 64 connections"
    # shellcheck disable=SC2086
    taskset -c "$CLIENT_CPU" wrk $warm -s "$BENCH/get304.lua" "$url" >/dev/null
    for rep in $(seq 1 "$REPS"); do
        run_wrk get304_c64_k1 server "$SERVER_PID" "$PORT" "$JWKS_PATH" get304.lua 64 "$rep"
        run_wrk get200_c64_k1 server "$SERVER_PID" "$PORT" "$JWKS_PATH" get.lua 64 "$rep"
    done
}

# measure_vs case conns server_path server_script ceiling_path ceiling_script: like
# measure, but the server and the ceiling answer different requests (a server endpoint
# compared with the ceiling's nearest case), alternating as in measure.
measure_vs() {
    local case=$1 conns=$2 spath=$3 sscript=$4 cpath=$5 cscript=$6 rep
    log "$case: $conns connections (server $spath vs ceiling $cpath)"
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d"${WARMUP}s" --timeout 10s -s "$BENCH/$sscript" "http://$HOST:$PORT$spath" >/dev/null
    pause_server
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d"${WARMUP}s" --timeout 10s -s "$BENCH/$cscript" "http://$HOST:$CEIL_PORT$cpath" >/dev/null
    resume_server
    for rep in $(seq 1 "$REPS"); do
        run_wrk "$case" server "$SERVER_PID" "$PORT" "$spath" "$sscript" "$conns" "$rep"
        pause_server
        run_wrk "$case" ceiling "$CEIL_PID" "$CEIL_PORT" "$cpath" "$cscript" "$conns" "$rep"
        resume_server
    done
}

fetch_jwks() { curl -kfs "$(url_of "$PORT")$JWKS_PATH" -o "$1"; }

# --- raw signing ceiling ---------------------------------------------------------------
for alg in RS256 ES256 EdDSA; do
    log "raw signing loop $alg"
    echo "meta sign $(taskset -c "$SERVER_CPU" "$CEIL" sign --alg $alg --secs "$SIGN_SECS")" >>"$RESULTS"
done

# --- 1 + 3: GET JWKS across connection counts, memory idle and peak ------------------
if has 1 || has 3; then
    start_server get-k1
    sleep 1
    idle=$(status_kib "$SERVER_PID" VmRSS)
    fetch_jwks "$OUT/jwks-k1.json"
    has 1 && start_ceiling RS256 "$OUT/jwks-k1.json"
    conns_list="1 16 64 256 1024"
    has 1 || conns_list=1024
    for c in $conns_list; do
        measure "get_c${c}_k1" "$JWKS_PATH" get.lua "$c"
    done
    echo "meta mem idle_rss_kib=$idle peak_hwm_kib=$(status_kib "$SERVER_PID" VmHWM) rss_after_load_kib=$(status_kib "$SERVER_PID" VmRSS) body_bytes=$(stat -c %s "$OUT/jwks-k1.json")" >>"$RESULTS"
    stop_ceiling
    if has 1; then
        BENCH_ETAG=$(curl -fsI "http://$HOST:$PORT$JWKS_PATH" | awk -F': ' 'tolower($1) == "etag" {print $2}' | tr -d '\r')
        export BENCH_ETAG
        measure_304
    fi
    if has 3 && ((SOAK_SECS > 0)); then
        log "memory soak: ${SOAK_SECS}s of GET (512 conns) + POST /auth (64 conns)"
        taskset -c "$CLIENT_CPU" wrk -t1 -c512 -d"${SOAK_SECS}s" -s "$BENCH/get.lua" "http://$HOST:$PORT$JWKS_PATH" >"$OUT/soak-get.txt" &
        g=$!
        taskset -c "$CLIENT_CPU" wrk -t1 -c64 -d"${SOAK_SECS}s" -s "$BENCH/post.lua" "http://$HOST:$PORT/auth" >"$OUT/soak-post.txt" &
        p=$!
        sleep 5
        first=$(status_kib "$SERVER_PID" VmRSS)
        max=$first
        last=$first
        while kill -0 $g 2>/dev/null; do
            last=$(status_kib "$SERVER_PID" VmRSS)
            ((last > max)) && max=$last
            echo "$(date +%s) $last" >>"$OUT/soak-rss.txt"
            sleep 5
        done
        wait $g $p || true
        echo "meta soak secs=$SOAK_SECS first_rss_kib=$first last_rss_kib=$last max_rss_kib=$max" >>"$RESULTS"
    fi
    stop_server
fi

# --- 1: 3 and 10 published keys --------------------------------------------------------
# A key is published from its creation until token-ttl + clock-skew after it retires, and
# one is created every rotation interval; with publish-ahead = N x 2s - 3.5s the steady state
# holds about N keys (N±1 as keys come and go; the counts seen are reported).
KEYS_SEEN=
note_keys() { KEYS_SEEN="$KEYS_SEEN$(key_count "$PORT"),"; }
if has 1; then
    for n in 3 10; do
        ahead=$((n * 2000 - 3500))
        start_server "get-k$n" --rotation-interval 2s --publish-ahead "${ahead}ms" \
            --jwks-max-age 1s --token-ttl 1s --clock-skew 0s
        log "waiting for $n published keys"
        sleep $((ahead / 1000 + 4))
        # The ceiling serves a snapshot holding exactly N keys (the server's count moves).
        for _ in $(seq 1 40); do
            fetch_jwks "$OUT/jwks-k$n.json"
            have=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["keys"]))' "$OUT/jwks-k$n.json")
            ((have == n)) && break
            sleep 0.25
        done
        log "published keys: $have"
        start_ceiling RS256 "$OUT/jwks-k$n.json"
        KEYS_SEEN=
        STOP_SERVER=0
        measure "get_c64_k$n" "$JWKS_PATH" get.lua 64 note_keys
        STOP_SERVER=1
        note_keys
        echo "meta keys case=get_c64_k$n wanted=$n seen=${KEYS_SEEN%,} body_bytes=$(stat -c %s "$OUT/jwks-k$n.json")" >>"$RESULTS"
        stop_ceiling
        stop_server
    done
fi

# --- 2: POST /auth per algorithm -------------------------------------------------------
if has 2; then
    for alg in RS256 ES256 EdDSA; do
        start_server "auth-$alg" --alg "$alg"
        fetch_jwks "$OUT/jwks-$alg.json"
        start_ceiling "$alg" "$OUT/jwks-$alg.json"
        measure "auth_$alg" /auth post.lua 64
        stop_ceiling
        stop_server
    done
fi

# --- 4: cold start ---------------------------------------------------------------------
if has 4; then
    cmd=(taskset -c "$SERVER_CPU" "$BIN" "${COMMON_ARGS[@]}" --database @DB@)
    modes=fresh
    [[ $DB_MODE == file ]] && modes="fresh existing"
    for mode in $modes; do
        log "cold start, $mode database x$COLD_REPS"
        if [[ $DB_MODE == memory ]]; then
            c=("${cmd[@]/@DB@/:memory:}")
        else
            c=("${cmd[@]}")
        fi
        r=$(taskset -c "$CLIENT_CPU" python3 "$BENCH/coldstart.py" --mode "$mode" --reps "$COLD_REPS" \
            --url "http://$HOST:$PORT$JWKS_PATH" --workdir "$TMP/cold-$mode" -- "${c[@]}")
        echo "meta cold mode=$mode $r" >>"$RESULTS"
    done
    [[ $DB_MODE == file ]] || echo "meta cold mode=existing skipped=no_durable_database" >>"$RESULTS"
fi

# --- 5: rotation under load ------------------------------------------------------------
# A new key every 2 s (RSA generation, a persisted change and a new snapshot each time),
# against scenario 1 and 2 at the default hourly rotation; and at part load (2
# connections leave the core idle part of the time), against the same load without
# rotation.
if has 5; then
    rot=(--rotation-interval 2s --publish-ahead 2s --jwks-max-age 1s --token-ttl 1s --clock-skew 0s)
    start_server rot-get "${rot[@]}"
    measure rot_get_c64 "$JWKS_PATH" get.lua 64
    measure rot_get_c2 "$JWKS_PATH" get.lua 2
    stop_server
    start_server static-get
    measure get_c2 "$JWKS_PATH" get.lua 2
    stop_server
    start_server rot-auth "${rot[@]}" --alg RS256
    measure rot_auth_RS256 /auth post.lua 64
    stop_server
fi

# --- 6: 10,000 users and 1,000,000 auth_logs rows ---------------------------------------
if has 6; then
    if ! supports --register-rate-limit || [[ $DB_MODE != file ]]; then
        log "scenario 6 skipped: needs POST /register and a SQLite database"
        echo "meta s6 skipped=needs_POST_/register_and_a_SQLite_database" >>"$RESULTS"
    else
        DB=$TMP/s6.db
        s6_start() {
            taskset -c "$SERVER_CPU" "$BIN" "${COMMON_ARGS[@]}" --database "$DB" --alg ES256 >>"$OUT/server-s6.log" 2>&1 &
            SERVER_PID=$!
            wait_200 "http://$HOST:$PORT$JWKS_PATH" || { echo "bench: s6 server did not start" >&2; exit 1; }
        }
        s6_start
        password=$(curl -fs -H 'Content-Type: application/json' \
            -d '{"username":"bench0","email":"bench0@example.com"}' "http://$HOST:$PORT/register" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["password"])')
        curl -fso /dev/null -u "bench0:$password" -X POST "http://$HOST:$PORT/auth"
        stop_server
        log "seeding 10,000 users and 1,000,000 auth_logs rows"
        echo "meta s6 $(python3 "$BENCH/seed.py" "$DB" 10000 1000000) alg=ES256" >>"$RESULTS"
        s6_start
        export BENCH_AUTH=
        measure s6_auth_anon /auth post.lua 64
        # An unregistered name in open mode: a user lookup and an audit row, no hashing.
        BENCH_AUTH="Basic $(printf 'nobody:x' | base64)"
        measure s6_auth_unknown /auth post.lua 64
        # A registered user (a clone of bench0 shares its hash): Argon2id dominates.
        BENCH_AUTH="Basic $(printf 'bench777:%s' "$password" | base64 -w0)"
        measure s6_auth_creds /auth post.lua 16
        BENCH_AUTH=
        stop_server
    fi
fi

# --- 7: POST /token client_credentials (issue 11) --------------------------------------
# A registered client (added with the CLI while the server runs, Basic credentials) on
# ES256 keys, against the ceiling's ES256 POST /auth.
if has 7; then
    if ! supports --token-rate-limit || [[ $DB_MODE != file ]]; then
        log "scenario 7 skipped: needs POST /token and a SQLite database"
        echo "meta s7 skipped=needs_POST_/token_and_a_SQLite_database" >>"$RESULTS"
    else
        start_server token-ES256 --alg ES256
        secret=$("$BIN" --database "${DB_ARGS[1]}" clients add bench-client 2>>"$OUT/server-token-ES256.log" |
            sed -n 's/^client_secret=//p')
        BENCH_AUTH="Basic $(printf 'bench-client:%s' "$secret" | base64 -w0)"
        export BENCH_AUTH
        deadline=$(($(date +%s) + 5))
        until curl -fso /dev/null -H "Authorization: $BENCH_AUTH" -d grant_type=client_credentials "http://$HOST:$PORT/token"; do
            (($(date +%s) < deadline)) || { echo "bench: the server never accepted the client" >&2; exit 1; }
            sleep 0.2
        done
        fetch_jwks "$OUT/jwks-token.json"
        start_ceiling ES256 "$OUT/jwks-token.json"
        measure_vs token_cc_ES256 64 /token token.lua /auth post.lua
        BENCH_AUTH=
        stop_ceiling
        stop_server
    fi
fi

# --- 8: HTTPS: keep-alive GET of the JWKS and POST /auth over TLS -----------------------
# The server serves HTTPS on PORT; the ceiling (examples/bench_ceiling.rs, --tls-cert)
# serves the same certificate with hyper + tokio-rustls (aws-lc-rs) on CEIL_PORT; and the
# same build of the server serves plain HTTP on PLAIN_PORT (target `plain`). All three are
# pinned to SERVER_CPU and measured alternately, the server stopped while another one is.
# wrk (OpenSSL, no certificate check) opens its connections once and keeps them, so this
# is the cost of TLS records on a warm connection, not of handshakes.
if has 8; then
    if ! supports --tls-cert; then
        log "scenario 8 skipped: this build has no --tls-cert"
        echo "meta note s8=skipped_no_tls" >>"$RESULTS"
    else
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
            -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
            -keyout "$TMP/tls-key.pem" -out "$TMP/tls-cert.pem" 2>/dev/null
        tls=(--tls-cert "$TMP/tls-cert.pem" --tls-key "$TMP/tls-key.pem")
        HTTPS_PORTS="$PORT $CEIL_PORT"
        for alg in EdDSA RS256; do
            start_server "tls-$alg" --alg "$alg" "${tls[@]}"
            fetch_jwks "$OUT/jwks-tls-$alg.json"
            start_ceiling "$alg" "$OUT/jwks-tls-$alg.json" "${tls[@]}"
            # The plain twin: the same flags but the port (COMMON_ARGS names PORT once).
            next_db
            taskset -c "$SERVER_CPU" "$BIN" "${COMMON_ARGS[@]/#$PORT/$PLAIN_PORT}" "${DB_ARGS[@]}" \
                --alg "$alg" >"$OUT/server-plain-$alg.log" 2>&1 &
            TWIN_PID=$!
            wait_200 "http://$HOST:$PLAIN_PORT$JWKS_PATH" 30
            if [[ $alg == EdDSA ]]; then
                measure tls_get_c64 "$JWKS_PATH" get.lua 64
            fi
            measure "tls_auth_${alg}_c64" /auth post.lua 64
            stop_twin
            stop_ceiling
            stop_server
        done
        HTTPS_PORTS=
        echo "meta note s8=ceiling_columns_are_hyper+rustls_over_TLS,plain_columns_the_same_build_over_plain_HTTP" >>"$RESULTS"
    fi
fi

# --- 9: rotation on a saturated core, before and after the spare successor (issue 14) --
# Keys rotate every 2 s (RSA-2048) while wrk keeps 64 connections busy (S9_PATH: the JWKS
# or POST /auth). Two loads: `saturated` is that load alone (the server ~99 % busy; its
# core idles only in the gaps between wrk's answers), `neveridle` adds the hog on the
# server core, so that the core never idles at all and idle-priority work gets next to
# nothing (SCHED_IDLE weighs 3 against a nice-0 task's 1024). For each load and
# repetition the builds are measured in turn, each from a fresh start: BIN_BEFORE when
# given (`before`), the current build (`after`), and the current build at the hourly
# default rotation (`static`: the load's p99 without key generation). Each gets
# S9_WARMUP s of load (rotations included, so the spare is in its steady state), then
# S9_SECS s measured. bench/rotation.py reads that window from the server's log and its
# /metrics (admin port): each successor published, how late it was (its activation minus
# its predecessor's planned retirement, which the rotator postpones when the successor
# comes late), its publication lead, and the key generation time.
if has 9; then
    if [[ $S9_PATH == auth ]]; then s9_path=/auth s9_script=post.lua; else s9_path=$JWKS_PATH s9_script=get.lua; fi
    rot=(--rotation-interval 2s --publish-ahead 2s --jwks-max-age 1s --token-ttl 1s --clock-skew 0s)
    builds="after static"
    if [[ -n $BIN_BEFORE ]]; then
        builds="before $builds"
        mapfile -t BEFORE_ARGS < <(base_args "$("$BIN_BEFORE" --help)")
        echo "meta note s9_before=$("$BIN_BEFORE" --version | tr ' ' '_')" >>"$RESULTS"
    fi
    s9_window() { # load rep build
        local load=$1 rep=$2 build=$3 label=s9_${1}_$3 bin=$BIN args=("${COMMON_ARGS[@]}") t0 t1 h0=0 h1=0
        case $build in
            before) bin=$BIN_BEFORE args=("${BEFORE_ARGS[@]}" "${rot[@]}") ;;
            after) args+=("${rot[@]}") ;;
        esac
        local logfile=$OUT/server-$label-$rep.log
        next_db
        taskset -c "$SERVER_CPU" "$bin" "${args[@]}" "${DB_ARGS[@]}" --alg RS256 \
            --admin-port "$ADMIN_PORT" >"$logfile" 2>&1 &
        SERVER_PID=$!
        wait_200 "http://$HOST:$PORT$JWKS_PATH" || { echo "bench: $label did not start" >&2; tail "$logfile" >&2; exit 1; }
        if [[ $load == neveridle ]]; then
            taskset -c "$SERVER_CPU" nice -n "$S9_HOG_NICE" bash -c 'while :; do :; done' &
            HOG_PID=$!
        fi
        log "$label, repetition $rep: ${S9_WARMUP}s of load, then ${S9_SECS}s measured"
        taskset -c "$CLIENT_CPU" wrk -t1 -c64 -d"${S9_WARMUP}s" --timeout 10s -s "$BENCH/$s9_script" \
            "http://$HOST:$PORT$s9_path" >/dev/null
        curl -fs "http://$HOST:$ADMIN_PORT/metrics" >"$TMP/metrics-0"
        [[ -n $HOG_PID ]] && h0=$(cpu_ticks "$HOG_PID")
        t0=$(date +%s%3N)
        DURATION=$S9_SECS run_wrk "$label" server "$SERVER_PID" "$PORT" "$s9_path" "$s9_script" 64 "$rep"
        t1=$(date +%s%3N)
        [[ -n $HOG_PID ]] && h1=$(cpu_ticks "$HOG_PID")
        curl -fs "http://$HOST:$ADMIN_PORT/metrics" >"$TMP/metrics-1"
        stop_hog
        stop_server
        echo "meta s9 case=$label rep=$rep load=$load build=$build hog_nice=$S9_HOG_NICE hog_ticks=$((h1 - h0)) $(python3 "$BENCH/rotation.py" \
            --log "$logfile" --from "$t0" --to "$t1" --interval-ms 2000 \
            --metrics "$TMP/metrics-0" "$TMP/metrics-1")" >>"$RESULTS"
    }
    for rep in $(seq 1 "$REPS"); do
        for load in $S9_LOADS; do
            for build in $builds; do
                s9_window "$load" "$rep" "$build"
            done
        done
    done
fi

echo "meta load at=end $(machine_load)" >>"$RESULTS"

python3 "$BENCH/summarize.py" "$RESULTS" >"$OUT/summary.md"
mkdir -p "$BENCH/results" && cp "$OUT/summary.md" "$BENCH/results/latest.md"
log "done in $(($(date +%s) - STARTED)) s: $OUT/summary.md"
cat "$OUT/summary.md"
