# shellcheck shell=bash
# What both README commands need first: the packages, the pinned cargo-pgrx and its init
# against the system PostgreSQL 15. Every step checks before it acts, so a re-run is quick.

set -euo pipefail

FLOE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_MAJOR=15
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
PGRX_VERSION=0.18.1
export FLOE_PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
export DEBIAN_FRONTEND=noninteractive

# shellcheck source=../pg_test/lib/cluster.sh
source "$FLOE_ROOT/pg_test/lib/cluster.sh"

step() { printf '\n==> %s\n' "$*"; }
die() {
    printf 'floe: %s\n' "$*" >&2
    exit 1
}

# rustup puts cargo in ~/.cargo/bin, which a non-login shell (CI) may not have on PATH.
if [ -d "$HOME/.cargo/bin" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

ensure_packages() {
    local wanted=(postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR clang libclang-dev
        build-essential pkg-config libssl-dev sudo python3 "$@")
    local missing=() p
    for p in "${wanted[@]}"; do pkg_installed "$p" || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    floe_is_root || die "missing packages (${missing[*]}); run this as root to install them"
    step "installing ${missing[*]}"
    if ! pkg_installed postgresql-common; then
        # Don't let the server package create and start Debian's own 'main' cluster.
        mkdir -p /etc/postgresql-common
        echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf
    fi
    apt-get update -qq
    local args=() server_version
    for p in "${missing[@]}"; do
        # The dev headers must match the installed server; unpinned, apt would upgrade the
        # server (and libpq) to the newest 15.x along with them.
        if [ "$p" = "postgresql-server-dev-$PG_MAJOR" ] && pkg_installed "postgresql-$PG_MAJOR"; then
            server_version=$(dpkg-query -W -f='${Version}' "postgresql-$PG_MAJOR")
            if apt-cache madison "$p" | grep -qF " $server_version "; then
                p="$p=$server_version"
            fi
        fi
        args+=("$p")
    done
    apt-get install -y -qq --no-install-recommends "${args[@]}" >/dev/null
}

ensure_cargo_pgrx() {
    command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain with rustup first"
    if [ "$(cargo pgrx --version 2>/dev/null)" = "cargo-pgrx $PGRX_VERSION" ]; then
        return 0
    fi
    step "installing cargo-pgrx $PGRX_VERSION (about 5 minutes on 2 cores)"
    cargo install cargo-pgrx --version "=$PGRX_VERSION" --locked --quiet
}

ensure_pgrx_init() {
    local cfg="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
    if grep -qF "pg$PG_MAJOR = \"$PG_CONFIG\"" "$cfg" 2>/dev/null; then
        return 0
    fi
    step "cargo pgrx init --pg$PG_MAJOR $PG_CONFIG"
    cargo pgrx init "--pg$PG_MAJOR" "$PG_CONFIG" >/dev/null
}

ensure_toolchain() {
    ensure_packages "$@"
    ensure_cargo_pgrx
    ensure_pgrx_init
    ensure_os_user
}

# Builds floe with the release profile and installs it into the system PostgreSQL.
install_release() {
    step "building and installing floe (release)"
    local log
    log=$(mktemp /tmp/floe-build.XXXXXX)
    if ! (cd "$FLOE_ROOT" && cargo pgrx install --release --pg-config "$PG_CONFIG") >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        die "building floe failed (full log: $log)"
    fi
    grep -E 'Finished' "$log" || true
    rm -f "$log"
}
