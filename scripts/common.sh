# shellcheck shell=bash
# What both README commands need first: the packages, the pinned cargo-pgrx and its init
# against the system PostgreSQL 15. Every step checks before it acts, so a re-run is quick.

set -euo pipefail

FLOE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_MAJOR=15
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
PGRX_VERSION=0.18.1
SYSTEM_PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
export FLOE_PG_BIN=$SYSTEM_PG_BIN
export DEBIAN_FRONTEND=noninteractive

# shellcheck source=../pg_test/lib/cluster.sh
source "$FLOE_ROOT/pg_test/lib/cluster.sh"
# shellcheck source=install.sh
source "$FLOE_ROOT/scripts/install.sh"

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

# ensure_pgrx_init [PG_CONFIG]: pgrx's config (in $PGRX_HOME, default ~/.pgrx) names the
# PostgreSQL to build against.
ensure_pgrx_init() {
    local pg_config=${1:-$PG_CONFIG}
    local cfg="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
    if grep -qF "pg$PG_MAJOR = \"$pg_config\"" "$cfg" 2>/dev/null; then
        return 0
    fi
    step "cargo pgrx init --pg$PG_MAJOR $pg_config"
    cargo pgrx init "--pg$PG_MAJOR" "$pg_config" >/dev/null
}

ensure_toolchain() {
    ensure_packages "$@"
    ensure_cargo_pgrx
    ensure_pgrx_init
    ensure_os_user
}

# Installs never write floe.so in place (see scripts/install.sh): the build goes into a
# package directory first, install_tree copies it over.

FLOE_PACKAGE_DIR=$FLOE_ROOT/target/floe-package/pg$PG_MAJOR

# Builds the release package (floe.so, control file, SQL scripts) into $FLOE_PACKAGE_DIR,
# laid out as the paths of the system PostgreSQL ($PG_CONFIG).
package_release() {
    step "building floe (release package)"
    local log
    log=$(mktemp /tmp/floe-build.XXXXXX)
    rm -rf "$FLOE_PACKAGE_DIR"
    if ! (cd "$FLOE_ROOT" && cargo pgrx package --pg-config "$PG_CONFIG" --out-dir "$FLOE_PACKAGE_DIR") >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        die "building floe failed (full log: $log)"
    fi
    grep -E 'Finished' "$log" || true
    rm -f "$log"
    # pgrx packages the generated install script and the upgrade scripts (floe--A--B.sql);
    # the install scripts of earlier releases kept in sql/ go beside them, so that those
    # versions can be installed and updated (the upgrade test does).
    local ext=$FLOE_PACKAGE_DIR/usr/share/postgresql/$PG_MAJOR/extension f
    for f in "$FLOE_ROOT"/sql/floe--[0-9]*.sql; do
        case $f in *--*--*) continue ;; esac
        [ -e "$ext/$(basename "$f")" ] || cp "$f" "$ext/"
    done
}

# install_release [ROOT]: builds the package and installs it under ROOT (default /, the
# system PostgreSQL; the tests pass their private copy), safely under running servers.
install_release() {
    local root=${1:-/}
    package_release
    step "installing floe into ${root%/}/ (atomic replace; running servers load it at their next restart)"
    install_tree "$FLOE_PACKAGE_DIR" "$root"
}

# The PostgreSQL that the tests run: a private copy of the system one under
# $FLOE_TEST_PREFIX (same layout below it). PostgreSQL's binaries find their share and lib
# directories relative to themselves, so the copy is complete on its own, and the tests'
# installs of floe (cargo pgrx test's debug build, the release build the server-side layers
# test, the builds the install test swaps) never touch the files a server started from the
# system directories (the demo of scripts/setup.sh, a user's own) has mapped.
FLOE_TEST_PREFIX=${FLOE_TEST_PREFIX:-$FLOE_OS_HOME/pg$PG_MAJOR-test}
FLOE_TEST_PG_CONFIG=$FLOE_TEST_PREFIX/usr/lib/postgresql/$PG_MAJOR/bin/pg_config

ensure_test_prefix() {
    local stamp want
    want="$("$SYSTEM_PG_BIN/postgres" --version) $(stat -c %Y "$SYSTEM_PG_BIN/postgres")"
    stamp=$FLOE_TEST_PREFIX/.floe-copy-of
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    step "copying PostgreSQL $PG_MAJOR to $FLOE_TEST_PREFIX (the tests' private install)"
    rm -rf "$FLOE_TEST_PREFIX"
    mkdir -p "$FLOE_TEST_PREFIX/usr/lib/postgresql" "$FLOE_TEST_PREFIX/usr/share/postgresql" \
        "$FLOE_TEST_PREFIX/usr/include"
    cp -a "/usr/lib/postgresql/$PG_MAJOR" "$FLOE_TEST_PREFIX/usr/lib/postgresql/"
    cp -a "/usr/share/postgresql/$PG_MAJOR" "$FLOE_TEST_PREFIX/usr/share/postgresql/"
    cp -a /usr/include/postgresql "$FLOE_TEST_PREFIX/usr/include/"
    # floe as the system had it is not the build under test.
    rm -f "$FLOE_TEST_PREFIX/usr/lib/postgresql/$PG_MAJOR/lib/floe.so" \
        "$FLOE_TEST_PREFIX/usr/share/postgresql/$PG_MAJOR/extension/floe"*
    [ "$("$FLOE_TEST_PG_CONFIG" --sharedir)" = "$FLOE_TEST_PREFIX/usr/share/postgresql/$PG_MAJOR" ] ||
        die "the copy of PostgreSQL in $FLOE_TEST_PREFIX does not find its own files (not relocatable?)"
    echo "$want" >"$stamp"
}

# Points this shell (cargo pgrx, the test layers) at the private copy.
use_test_prefix() {
    ensure_test_prefix
    export PGRX_HOME=$FLOE_TEST_PREFIX/pgrx
    export FLOE_PG_BIN=$FLOE_TEST_PREFIX/usr/lib/postgresql/$PG_MAJOR/bin
    mkdir -p "$PGRX_HOME"
    ensure_pgrx_init "$FLOE_TEST_PG_CONFIG"
}
