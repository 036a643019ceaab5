# Installs what the template's scripts need, only when it is missing.
# Sourced by ci/test.sh and ci/bench.sh.

# cargo-generate 0.23.7: the newest that builds on rustc 1.95.
ensure_cargo_generate() {
    if cargo generate --version >/dev/null 2>&1; then
        echo "found $(cargo-generate --version 2>/dev/null || cargo generate --version)"
        return
    fi
    echo "installing cargo-generate 0.23.7 (about 6 minutes)"
    cargo install cargo-generate --version 0.23.7 --locked
}

# Debian's clamd and the test files the ClamAV tests scan.
ensure_clamav() {
    if [[ -x /usr/sbin/clamd && -d /usr/share/clamav-testfiles ]]; then
        echo "using $(/usr/sbin/clamd --version)"
        return
    fi
    echo "installing Debian's clamav-daemon and clamav-testfiles"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq clamav-daemon clamav-testfiles >/dev/null
    # The package may start its own daemons; the tests run their own.
    service clamav-daemon stop >/dev/null 2>&1 || true
    service clamav-freshclam stop >/dev/null 2>&1 || true
}

# cargo-fuzz, for the generated crates' bounded fuzz runs. libFuzzer needs
# nightly-only flags; the scripts pass RUSTC_BOOTSTRAP=1 to the one stable
# toolchain this machine has.
ensure_cargo_fuzz() {
    if cargo fuzz --version >/dev/null 2>&1; then
        echo "found $(cargo fuzz --version)"
        return
    fi
    echo "installing cargo-fuzz 0.13.2 (under a minute)"
    cargo install cargo-fuzz --version 0.13.2 --locked
}
