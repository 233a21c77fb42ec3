#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 20) on a stable toolchain
# (RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly-only flags, AddressSanitizer among
# them). Each run starts from the seeds in seeds/<target> (in the repository) plus what
# earlier runs found in corpus/<target> (not in the repository). Any crash, sanitizer
# report, timeout or leak fails the script; libFuzzer writes the input to artifacts/.
#   fuzz/run.sh 20              every target, 20 s each
#   fuzz/run.sh 60 settings     one target
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-20}"
shift || true
export RUSTC_BOOTSTRAP=1
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi
started=$(date +%s)
cargo fuzz build
echo "fuzz: built in $(( $(date +%s) - started )) s"
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    echo "fuzz: $target for ${seconds} s"
    # -max_len bounds inputs to what a request head or body may carry (16 KiB);
    # -timeout fails an input that takes over 10 s; -rss_limit_mb a runaway allocation.
    cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1
done
echo "fuzz: ${#targets[@]} targets, no crash, $(( $(date +%s) - started )) s in all"
