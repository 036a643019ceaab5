#!/usr/bin/env bash
# The template's benchmark. Generates the EICAR and the ClamAV engine with the
# real `cargo generate`, times a cold release build of each (and reports the
# binary's size), then runs each engine's own benchmark (`cargo bench --bench
# engine`, see benches/engine.rs in a generated crate) against one real clamd
# started here: raw clamd INSTREAM throughput (the limit) and the engine end
# to end, per artifact size, in the same run.
#
# Prints a table; writes everything as JSON to $BENCH_JSON (default
# ./bench-results.json).
#
# Environment:
#   BENCH_ARGS="--seconds 5 --concurrency 4"  passed to each engine's benchmark
#   BENCH_JSON=FILE                            where the JSON goes
#   KEEP=1                                     keep the generated engines
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CI_DIR="$REPO/ci"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/engine-template-bench.XXXXXX")
BENCH_JSON=$(realpath -m "${BENCH_JSON:-bench-results.json}")
BENCH_ARGS=${BENCH_ARGS:-}
export CARGO_NAME="${CARGO_NAME:-Template CI}"
export CARGO_EMAIL="${CARGO_EMAIL:-template-ci@example.com}"
export CARGO_TERM_COLOR=never

# clamd sized for the largest artifact (16 MiB) and the default concurrency.
export CLAMD_STREAM_MAX=32M CLAMD_THREADS=4

cleanup() {
    "$CI_DIR/clamd.sh" stop "$WORK/clamd" >/dev/null 2>&1 || true
    if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT

log() { printf '\n=== %s\n' "$*"; }

# shellcheck source=ci/prerequisites.sh
source "$CI_DIR/prerequisites.sh"
log "prerequisites"
ensure_cargo_generate
ensure_clamav

for backend in eicar clamav; do
    name="MyBench${backend^}Engine"
    slug=$(printf '%s' "$name" | tr 'A-Z' 'a-z')
    crate="$WORK/$backend/microengine-$slug"
    target="$WORK/target-$backend"
    mkdir -p "$WORK/$backend"
    log "$backend: generate"
    cargo generate --path "$REPO" template --name "microengine-$slug" \
        --destination "$WORK/$backend" --silent --vcs none \
        -d "engine-name=$name" -d "backend=$backend" -d artifact_types=files </dev/null

    log "$backend: cold release build (empty target directory)"
    started=$(date +%s.%N)
    (cd "$crate" && CARGO_TARGET_DIR="$target" cargo build --release --quiet)
    finished=$(date +%s.%N)
    build_secs=$(python3 -c "print(round($finished - $started, 1))")
    binary_bytes=$(stat -c %s "$target/release/microengine-$slug")
    echo "built in $build_secs s; binary $binary_bytes bytes"

    env=()
    if [[ $backend == clamav ]]; then
        "$CI_DIR/clamd.sh" start "$WORK/clamd" "$crate/tests/fixtures/clamav"
        env=(CLAMD_HOST=127.0.0.1 "CLAMD_PORT=$(cat "$WORK/clamd/port")")
    fi
    log "$backend: cargo bench --bench engine -- $BENCH_ARGS"
    # shellcheck disable=SC2086
    (cd "$crate" && env "${env[@]}" CARGO_TARGET_DIR="$target" \
        cargo bench --quiet --bench engine -- $BENCH_ARGS --json "$WORK/$backend.json")
    [[ $backend == clamav ]] && "$CI_DIR/clamd.sh" stop "$WORK/clamd"

    python3 - "$WORK/$backend.json" "$build_secs" "$binary_bytes" <<'PY'
import json, sys
path, secs, size = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
report = json.load(open(path))
report["cold_release_build_secs"] = secs
report["binary_bytes"] = size
json.dump(report, open(path, "w"), indent=2)
PY
done

log "summary"
python3 - "$BENCH_JSON" "$WORK/eicar.json" "$WORK/clamav.json" <<'PY'
import json, sys
out, *paths = sys.argv[1:]
reports = {json.load(open(p))["engine"]: json.load(open(p)) for p in paths}
def size(n):
    return f"{n // 2**20} MiB" if n >= 2**20 else f"{n // 2**10} KiB"
print(f"{'engine':<32} {'run':<14} {'size':>7} {'in flight':>9} {'scan':>4} {'per s':>8} {'p50 ms':>7} {'p99 ms':>7} {'RSS MB':>7}")
for engine, report in reports.items():
    for run in report["runs"]:
        cell = lambda v: "-" if v is None else f"{v:.1f}"
        scan = "-" if run.get("scanning") is None else run["scanning"]
        print(f"{engine:<32} {run['what']:<14} {size(run['size_bytes']):>7} {run['concurrency']:>9} {scan:>4} "
              f"{run['per_second']:>8.1f} {cell(run['p50_ms']):>7} {cell(run['p99_ms']):>7} {cell(run['peak_rss_mb']):>7}")
print()
for engine, report in reports.items():
    runs = report["runs"]
    for run in runs:
        if run["what"] != "engine":
            continue
        raw = [r for r in runs if r["what"] == "raw clamd" and r["size_bytes"] == run["size_bytes"]]
        if raw and raw[0]["per_second"] > 0:
            print(f"{engine}: engine/raw at {size(run['size_bytes'])}: {run['per_second'] / raw[0]['per_second']:.2f}")
for engine, report in reports.items():
    print(f"{engine}: cold release build {report['cold_release_build_secs']} s, "
          f"binary {report['binary_bytes'] / 2**20:.1f} MiB")
json.dump(reports, open(out, "w"), indent=2)
print(f"wrote {out}")
PY
