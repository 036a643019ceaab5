#!/usr/bin/env bash
# The template's own test suite.
#
# Renders every supported combination of placeholders with the real
# `cargo generate` CLI into a temporary folder outside the repository, then
# checks each generated engine: names, file list, no leftover Liquid,
# CUSTOMIZE_HERE markers (present and walked through in its README), fmt,
# clippy, a warning-free build, `cargo test` (ClamAV tests against a real
# clamd), the load and fault suite (`tests/load.rs`), a bounded fuzz run of
# every fuzz target (`fuzz/`), and `analyze --check-eicar` on the built
# binary. It also checks that
# bad engine names are refused and drives the interactive flow through a
# pseudo-terminal.
#
# Installs what it needs when missing: cargo-generate 0.23.7 (the newest that
# builds on rustc 1.95), cargo-fuzz, Debian's clamav-daemon and
# clamav-testfiles.
#
# Environment:
#   VARIANTS="eicar:files clamav:files"  only these combinations
#   ENGINE_TEMPLATE_TARGET=DIR           shared cargo target dir (reused across runs)
#   FUZZ_SECONDS=10                      length of each fuzz target's run
#   KEEP=1                               keep the generated engines
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CI_DIR="$REPO/ci"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/engine-template-test.XXXXXX")
export CARGO_TARGET_DIR="${ENGINE_TEMPLATE_TARGET:-${TMPDIR:-/tmp}/engine-template-target}"
# cargo-generate refuses to run without an author.
export CARGO_NAME="${CARGO_NAME:-Template CI}"
export CARGO_EMAIL="${CARGO_EMAIL:-template-ci@example.com}"
export CARGO_TERM_COLOR=never

ALL_VARIANTS="eicar:files eicar:urls eicar:both clamav:files"
VARIANTS="${VARIANTS:-$ALL_VARIANTS}"

PASSED=0
FAILED=0
FAILURES=()

cleanup() {
    "$CI_DIR/clamd.sh" stop "$WORK/clamd" >/dev/null 2>&1 || true
    if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT

log() { printf '\n=== %s\n' "$*"; }
pass() { PASSED=$((PASSED + 1)); printf 'ok   %s\n' "$1"; }
fail() { FAILED=$((FAILED + 1)); FAILURES+=("$1"); printf 'FAIL %s\n' "$1"; }

# check NAME COMMAND...: runs COMMAND, records the outcome, shows output on failure.
check() {
    local name=$1; shift
    local out="$WORK/last-check.log"
    if "$@" >"$out" 2>&1; then
        pass "$name"
    else
        fail "$name"
        tail -n 60 "$out" | sed 's/^/     | /'
    fi
}

# --- prerequisites ----------------------------------------------------------

# shellcheck source=ci/prerequisites.sh
source "$CI_DIR/prerequisites.sh"

log "prerequisites"
ensure_cargo_generate
ensure_cargo_fuzz
case " $VARIANTS " in *" clamav:"*) ensure_clamav ;; esac

# --- generation --------------------------------------------------------------

# generate DEST NAME BACKEND TYPES: scripted generation, never prompts.
generate() {
    local dest=$1 name=$2 backend=$3 types=$4
    local slug
    slug=$(printf '%s' "$name" | tr 'A-Z' 'a-z' | tr -d ' ._-')
    mkdir -p "$dest"
    cargo generate --path "$REPO" template \
        --name "microengine-$slug" \
        --destination "$dest" --silent --vcs none \
        -d "engine-name=$name" -d "backend=$backend" -d "artifact_types=$types" \
        -d "author_org=Acme Labs" -d "author_name=Ada Author" -d "author_email=ada@example.com" \
        </dev/null
}

no_leftover_liquid() {
    # GitHub Actions expressions (${{ ... }}) are not Liquid.
    ! grep -rnI --exclude-dir=target -e '{%' -e '%}' -e '{{' "$1" | grep -v '\${{'
}

expected_files() {
    local backend=$1 types=$2
    cat "$CI_DIR/expected-files/common.txt" "$CI_DIR/expected-files/$backend.txt" | sort
}

file_list_matches() {
    local crate=$1 backend=$2 types=$3
    diff <(expected_files "$backend" "$types") \
         <(cd "$crate" && find . -type f -not -path './target/*' | sed 's#^\./##' | sort)
}

markers_walked_through() {
    local crate=$1
    local in_code in_readme
    in_code=$(grep -rhoI --exclude=README.md 'CUSTOMIZE_HERE([0-9]*)' "$crate" | sort -u)
    in_readme=$(grep -ohI 'CUSTOMIZE_HERE([0-9]*)' "$crate/README.md" | sort -u)
    [[ -n "$in_code" ]] || { echo "no CUSTOMIZE_HERE markers"; return 1; }
    echo "markers: $(echo $in_code)"
    diff <(echo "$in_code") <(echo "$in_readme")
    # Numbered 1..n without gaps.
    local n; n=$(echo "$in_code" | wc -l)
    diff <(echo "$in_code") <(seq 1 "$n" | sed 's/.*/CUSTOMIZE_HERE(&)/' | sort -u)
}

builds_without_warnings() {
    local crate=$1
    local out; out=$(cd "$crate" && cargo build --all-targets 2>&1) || { echo "$out"; return 1; }
    if grep -q '^warning' <<<"$out"; then echo "$out"; return 1; fi
}

run_tests() {
    local crate=$1 backend=$2
    local out="$WORK/test-output.log"
    if [[ "$backend" == clamav ]]; then
        # Fail instead of skipping when clamd is missing.
        (cd "$crate" && REQUIRE_CLAMD=1 cargo test 2>&1) | tee "$out"
    else
        (cd "$crate" && cargo test 2>&1) | tee "$out"
    fi
    local status=${PIPESTATUS[0]}
    [[ $status -eq 0 ]] || return 1
    if grep -q 'SKIPPED' "$out"; then echo "some tests were skipped"; return 1; fi
    grep -q 'test result: ok' "$out"
}

run_load_tests() {
    # The generated crate's load and fault suite (ignored by plain `cargo
    # test`); its figures go to the log and to $WORK/load-<label>.txt.
    local crate=$1 backend=$2 label=$3
    local out="$WORK/load-output.log"
    (cd "$crate" && REQUIRE_CLAMD=1 cargo test --test load -- --ignored --nocapture --test-threads 1 2>&1) >"$out"
    local status=$?
    # --nocapture prints a test's first figures on its "test ... " line.
    grep -oE 'load\[.*' "$out" | sed "s#^#$label #" | tee "$WORK/load-${label//\//-}.txt"
    grep -E '^test result' "$out"
    [[ $status -eq 0 ]] || { tail -n 40 "$out"; return 1; }
    if grep -q 'SKIPPED' "$out"; then echo "some load tests were skipped"; return 1; fi
}

run_fuzz() {
    # A short, bounded run of each of the crate's fuzz targets, seeded with
    # its corpus in fuzz/corpus/ (webhook bodies also with the hostile corpus).
    # The figures go to $WORK/fuzz-<label>.txt.
    local crate=$1 label=$2 seconds=${FUZZ_SECONDS:-10}
    local out="$WORK/fuzz-output.log" targets
    targets=$(cd "$crate" && cargo fuzz list) || return 1
    [[ -n "$targets" ]] || { echo "no fuzz targets"; return 1; }
    for target in $targets; do
        local seeds=("fuzz/corpus/$target")
        [[ $target == webhook_bounty ]] && seeds+=(tests/fixtures/hostile)
        if ! (cd "$crate" && RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "${seeds[@]}" -- \
                -max_total_time="$seconds" >"$out" 2>&1); then
            echo "fuzz target $target failed:"; tail -n 40 "$out"; return 1
        fi
        echo "$label fuzz $target: $(grep -E '^Done [0-9]+ runs' "$out" || tail -n 1 "$out")" \
            | tee -a "$WORK/fuzz-${label//\//-}.txt"
    done
}

check_eicar() {
    local crate=$1 backend=$2 package=$3
    local binary="$CARGO_TARGET_DIR/debug/$package"
    if [[ "$backend" == clamav ]]; then
        "$CI_DIR/clamd.sh" start "$WORK/clamd" "$crate/tests/fixtures/clamav" >/dev/null
        CLAMD_HOST=127.0.0.1 CLAMD_PORT=$(cat "$WORK/clamd/port") \
            "$binary" analyze --check-eicar --check-empty
        local status=$?
        "$CI_DIR/clamd.sh" stop "$WORK/clamd"
        return $status
    fi
    (cd "$crate" && "$binary" analyze --check-eicar --check-empty)
}

analyze_reports_clean_artifact_benign() {
    local crate=$1 backend=$2 package=$3 types=$4
    local binary="$CARGO_TARGET_DIR/debug/$package"
    local artifact="$WORK/clean.txt"
    printf 'not a malicious file' >"$artifact"
    # A URL-only engine analyses URLs, not files.
    [[ "$types" == urls ]] && artifact="https://www.example.com/index.html"
    local env=()
    if [[ "$backend" == clamav ]]; then
        "$CI_DIR/clamd.sh" start "$WORK/clamd" "$crate/tests/fixtures/clamav" >/dev/null
        env=(CLAMD_HOST=127.0.0.1 "CLAMD_PORT=$(cat "$WORK/clamd/port")")
    fi
    local out; out=$(cd "$crate" && env "${env[@]}" "$binary" analyze --json "$artifact")
    local status=$?
    [[ "$backend" == clamav ]] && "$CI_DIR/clamd.sh" stop "$WORK/clamd"
    echo "$out"
    [[ $status -eq 0 ]] && grep -q '"verdict":"benign"' <<<"$out"
}

test_variant() {
    local backend=$1 types=$2
    local name="My${backend^}${types^}Engine"
    local slug; slug=$(printf '%s' "$name" | tr 'A-Z' 'a-z')
    local dest="$WORK/$backend-$types"
    local crate="$dest/microengine-$slug"
    local package="microengine-$slug"
    local label="$backend/$types"

    log "variant backend=$backend artifact_types=$types ($name)"
    check "$label: cargo generate" generate "$dest" "$name" "$backend" "$types"
    if [[ ! -d "$crate" ]]; then fail "$label: folder microengine-$slug"; return; fi
    pass "$label: folder microengine-$slug"
    check "$label: package name" grep -qx "name = \"$package\"" "$crate/Cargo.toml"
    check "$label: expected file list" file_list_matches "$crate" "$backend" "$types"
    check "$label: no leftover Liquid" no_leftover_liquid "$crate"
    check "$label: CUSTOMIZE_HERE markers listed in README" markers_walked_through "$crate"
    check "$label: cargo fmt --check" bash -c "cd '$crate' && cargo fmt --check"
    check "$label: cargo clippy -D warnings" bash -c "cd '$crate' && cargo clippy --all-targets -- -D warnings"
    check "$label: build without warnings" builds_without_warnings "$crate"
    check "$label: cargo test" run_tests "$crate" "$backend"
    check "$label: load and fault suite" run_load_tests "$crate" "$backend" "$label"
    check "$label: bounded fuzz run" run_fuzz "$crate" "$label"
    check "$label: analyze --check-eicar" check_eicar "$crate" "$backend" "$package"
    check "$label: clean artifact is benign" analyze_reports_clean_artifact_benign "$crate" "$backend" "$package" "$types"
}

# --- hooks -------------------------------------------------------------------

refused() {
    # refused [--strict] EXPECTED_MESSAGE ARGS...: generation fails and says
    # why. No file is written; with --strict, not even the (empty) folder
    # cargo-generate creates before it validates choices.
    local strict=0
    if [[ $1 == --strict ]]; then strict=1; shift; fi
    local expected=$1; shift
    local dest="$WORK/refused"
    rm -rf "$dest"; mkdir -p "$dest"
    local out status=0
    out=$(cargo generate --path "$REPO" template --destination "$dest" --silent --vcs none \
        -d backend=eicar -d artifact_types=files "$@" </dev/null 2>&1) || status=$?
    echo "$out"
    [[ $status -ne 0 ]] || { echo "generation succeeded"; return 1; }
    grep -qF -- "$expected" <<<"$out" || { echo "message lacks: $expected"; return 1; }
    if [[ $strict == 1 ]]; then
        [[ -z "$(ls -A "$dest")" ]] || { echo "something was written: $(ls -A "$dest")"; return 1; }
    else
        [[ -z "$(find "$dest" -type f)" ]] || { echo "files were written: $(find "$dest" -type f)"; return 1; }
    fi
}

test_hooks() {
    log "hooks refuse bad input"
    check "bad engine name (punctuation) is refused" refused --strict "contains '!'" --name 'microengine-bad!'
    check "empty engine name is refused" refused --strict "has no letters or digits" --name 'microengine-'
    check "bare engine name explains the flags" refused --strict "--name microengine-myengine -d engine-name=My.Engine" --name 'My.Engine'
    check "unknown backend is refused" refused "bogus" --name microengine-x -d backend=bogus
    check "clamav with URLs is refused" refused "files only" --name microengine-x -d backend=clamav -d artifact_types=both
}

test_interactive() {
    log "interactive generation through a pseudo-terminal"
    local dest="$WORK/interactive"
    mkdir -p "$dest"
    check "interactive: asks for the engine name" python3 "$CI_DIR/interactive.py" \
        "My Interactive.Engine" -- \
        cargo generate --path "$REPO" template --destination "$dest" --vcs none \
        -d backend=eicar -d artifact_types=files -d author_org=Acme \
        -d author_name=Ada -d author_email=ada@example.com
    check "interactive: folder microengine-myinteractiveengine" \
        test -f "$dest/microengine-myinteractiveengine/Cargo.toml"
    check "interactive: engine name kept" \
        grep -q 'My Interactive.Engine' "$dest/microengine-myinteractiveengine/Cargo.toml"
}

# --- run ---------------------------------------------------------------------

test_hooks
test_interactive
for variant in $VARIANTS; do
    test_variant "${variant%%:*}" "${variant##*:}"
done

log "load and fault figures"
cat "$WORK"/load-*.txt 2>/dev/null || true
log "fuzz figures"
cat "$WORK"/fuzz-*.txt 2>/dev/null || true

log "summary"
for failure in "${FAILURES[@]}"; do echo "FAILED: $failure"; done
echo "template: $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
