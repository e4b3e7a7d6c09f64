# shellcheck shell=bash
# How floe's files get into a PostgreSQL installation, for every script and test that
# installs floe (scripts/common.sh's install_release, the install-under-load scenario).
#
# Never write floe.so in place: a server that has it mapped (shared_preload_libraries, or any
# backend that used floe) crashes when the file under it changes. install_tree gives every
# file a new inode instead (a copy under a temporary name in the target directory, then
# rename(2) over the old name): running servers keep the library they mapped until they
# restart, and a process that opens the file sees the old one or the new one, never a half.

# install_tree SRC DEST: copies every file under SRC to the same path under DEST, each by
# rename(2), so a reader sees the old file or the new one, never a half-written one.
install_tree() {
    local src=$1 dest=$2 rel target dir tmp mode
    [ -d "$src" ] || { echo "install_tree: $src is not a directory" >&2; return 1; }
    while IFS= read -r -d '' rel; do
        rel=${rel#./}
        target=$dest/$rel
        dir=$(dirname "$target")
        mkdir -p "$dir"
        tmp=$(mktemp "$dir/.floe-new.XXXXXX")
        mode=0644
        [ -x "$src/$rel" ] && mode=0755
        install -m "$mode" "$src/$rel" "$tmp"
        mv -f "$tmp" "$target"
    done < <(cd "$src" && find . -type f -print0)
}

