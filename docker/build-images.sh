#!/usr/bin/env bash
# Builds the cluster's container images offline, each `FROM scratch` from binaries on this machine
# plus their ldd closure (no registry, nothing pulled):
#
#   pkgcluster/postgres:VERSION  PostgreSQL 15 (Debian), primary or streaming standby (pg-entrypoint)
#   pkgcluster/haproxy:VERSION   HAProxy (Debian), config mounted at run time
#   pkgcluster/garage:VERSION    Garage S3 server (~/.cargo/bin/garage)
#   pkgcluster/pkgnode:VERSION   the node (target/release/pkgnode, or $PKGNODE_BIN)
#
# VERSION is `[workspace.package] version` from the workspace Cargo.toml. An image whose tag exists
# is skipped unless --force. Usage: docker/build-images.sh [--force] [postgres|haproxy|garage|pkgnode ...]
#
# Environment: PKGNODE_BIN (default <repo>/target/release/pkgnode), GARAGE_BIN (default
# ~/.cargo/bin/garage, else `garage` on PATH), IMAGE_PREFIX (default pkgcluster).
# Each image's user is uid/gid 999 (IMAGE_UID here, `999` in the Dockerfiles' COPY --chown/USER).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
ALL_IMAGES=(postgres haproxy garage pkgnode)

PG_MAJOR=15 # also in postgres/Dockerfile (PATH)
PREFIX=${IMAGE_PREFIX:-pkgcluster}
IMAGE_UID=999 # also in the Dockerfiles
PKGNODE_BIN=${PKGNODE_BIN:-$REPO/target/release/pkgnode}
if [[ -z ${GARAGE_BIN:-} ]]; then
    if [[ -x ${HOME:-/root}/.cargo/bin/garage ]]; then
        GARAGE_BIN=${HOME:-/root}/.cargo/bin/garage
    else
        GARAGE_BIN=$(command -v garage || true)
    fi
fi

usage() {
    sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

FORCE=0
WANTED=()
for arg in "$@"; do
    case $arg in
        --force | -f) FORCE=1 ;;
        -h | --help) usage; exit 0 ;;
        postgres | haproxy | garage | pkgnode) WANTED+=("$arg") ;;
        *) echo "build-images: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done
[[ ${#WANTED[@]} -gt 0 ]] || WANTED=("${ALL_IMAGES[@]}")

die() { echo "build-images: $*" >&2; exit 1; }
log() { echo "build-images: $*" >&2; }

VERSION=$(awk '
    /^\[/ { in_pkg = ($0 ~ /^\[workspace\.package\][[:space:]]*$/) ; next }
    in_pkg && /^[[:space:]]*version[[:space:]]*=/ {
        sub(/^[^=]*=[[:space:]]*"/, ""); sub(/".*$/, ""); print; exit
    }' "$REPO/Cargo.toml")
[[ -n $VERSION ]] || die "no [workspace.package] version in $REPO/Cargo.toml"

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (docker info)"
command -v ldd >/dev/null || die "ldd is not installed (libc-bin)"

# Installs a Debian package when the file it provides is missing (root only).
ensure_apt() {
    local pkg=$1 file=$2
    [[ -e $file ]] && return 0
    [[ $(id -u) -eq 0 ]] || die "$file is missing: install it with 'apt-get install -y $pkg' (as root)"
    log "installing $pkg (for $file)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$pkg" >&2 ||
        { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$pkg" >&2; } ||
        die "could not install $pkg"
    [[ -e $file ]] || die "$pkg is installed but $file is still missing"
}

# ---------------------------------------------------------------------------------------------
# rootfs assembly. ROOTFS is the image's root in the temp build context; the layout mirrors the
# host's merged /usr (bin, sbin, lib, lib64 are links into usr/), and every file keeps its path.

ROOTFS=
declare -A SEEN=()

new_rootfs() {
    ROOTFS=$1
    SEEN=()
    mkdir -p "$ROOTFS"/{usr/bin,usr/sbin,usr/lib,usr/lib64,usr/local/bin,etc,tmp,var/tmp,run,proc,sys,dev}
    ln -s usr/bin "$ROOTFS/bin"
    ln -s usr/sbin "$ROOTFS/sbin"
    ln -s usr/lib "$ROOTFS/lib"
    ln -s usr/lib64 "$ROOTFS/lib64"
    ln -s ../run "$ROOTFS/var/run"
    chmod 1777 "$ROOTFS/tmp" "$ROOTFS/var/tmp"
    chmod 755 "$ROOTFS/run"
}

# add_path /abs/path: copies one file (or symlink, following the chain) into ROOTFS at the same
# path, with the directory part resolved the way the host resolves it.
add_path() {
    local p=$1
    [[ $p == /* ]] || die "add_path needs an absolute path: $p"
    [[ -z ${SEEN[$p]:-} ]] || return 0
    SEEN[$p]=1
    local dir base src
    dir=$(readlink -f "$(dirname "$p")") || die "cannot resolve $(dirname "$p")"
    base=$(basename "$p")
    src=${dir%/}/$base
    [[ -e $src || -L $src ]] || die "missing on this machine: $p"
    mkdir -p "$ROOTFS$dir"
    if [[ -L $src ]]; then
        local target
        target=$(readlink "$src")
        ln -sfn "$target" "$ROOTFS$src"
        if [[ $target == /* ]]; then add_path "$target"; else add_path "$dir/$target"; fi
    elif [[ -d $src ]]; then
        die "add_path copies files only, not the directory $src (use add_tree)"
    else
        cp -p "$src" "$ROOTFS$src"
    fi
}

# The shared objects ldd resolves for one ELF file, the dynamic loader included; fails when one
# is not found. A static executable has none.
ldd_deps() {
    local f=$1 out
    out=$(ldd "$f" 2>&1) || {
        case $out in *"not a dynamic executable"* | *"statically linked"*) return 0 ;; esac
        die "ldd $f failed: $out"
    }
    if grep -q 'not found' <<<"$out"; then
        echo "$out" >&2
        return 1
    fi
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
}

# add_libs FILE...: the ldd closure of each file (not the file itself).
add_libs() {
    local f dep deps
    for f in "$@"; do
        deps=$(ldd_deps "$f") || die "unresolved libraries for $f (above)"
        for dep in $deps; do add_path "$dep"; done
    done
}

# add_elf FILE...: each file, at its path, and its ldd closure.
add_elf() {
    local f
    for f in "$@"; do
        add_path "$f"
        add_libs "$f"
    done
}

# install_bin FILE DEST: an executable installed at another path (e.g. /usr/local/bin/x), and
# its ldd closure.
install_bin() {
    local real
    real=$(readlink -f "$1")
    install -m 755 "$real" "$ROOTFS$2"
    add_libs "$real"
}

# add_tree DIR [find-exclusions...]: a directory tree, same path, symlinks kept; an absolute
# symlink leaving the tree brings its target along.
add_tree() {
    local src=$1 real link target
    shift
    real=$(readlink -f "$src")
    mkdir -p "$ROOTFS$(dirname "$real")"
    (cd "$(dirname "$real")" && find "$(basename "$real")" "$@" -print0 |
        tar --null --no-recursion -T - -cf - | tar -C "$ROOTFS$(dirname "$real")" -xpf -) ||
        die "copying $src failed"
    while IFS= read -r -d '' link; do
        target=$(readlink "$link")
        if [[ $target == /* && $target != "$real"/* ]]; then add_path "$target"; fi
    done < <(find "$ROOTFS$real" -type l -print0)
}

# Static busybox as /bin/sh, with a link per applet (never over a real program).
add_busybox() {
    ensure_apt busybox-static /bin/busybox
    local bb applet
    bb=$(readlink -f /bin/busybox)
    # Debian's `busybox` (dynamic) and `busybox-static` both install /bin/busybox; insist on static.
    if ldd "$bb" >/dev/null 2>&1; then
        die "$bb is not static: apt-get install -y busybox-static"
    fi
    cp -p "$bb" "$ROOTFS/usr/bin/busybox"
    for applet in $("$bb" --list); do
        [[ $applet == busybox ]] && continue
        [[ -e $ROOTFS/usr/bin/$applet || -L $ROOTFS/usr/bin/$applet ]] && continue
        ln -s busybox "$ROOTFS/usr/bin/$applet"
    done
}

# /etc/passwd, /etc/group (root, the image's user, nobody) and /etc/nsswitch.conf.
add_user() {
    local name=$1 home=$2
    cat >"$ROOTFS/etc/passwd" <<EOF
root:x:0:0:root:/root:/bin/sh
$name:x:$IMAGE_UID:$IMAGE_UID:$name:$home:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
    cat >"$ROOTFS/etc/group" <<EOF
root:x:0:
$name:x:$IMAGE_UID:
nogroup:x:65534:
EOF
    cat >"$ROOTFS/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
shadow: files
hosts: files dns
networks: files
protocols: files
services: files
EOF
    chmod 644 "$ROOTFS/etc/passwd" "$ROOTFS/etc/group" "$ROOTFS/etc/nsswitch.conf"
    mkdir -p "$ROOTFS/root"
    chmod 700 "$ROOTFS/root"
}

# ---------------------------------------------------------------------------------------------
# The images.

assemble_postgres() {
    local bindir=/usr/lib/postgresql/$PG_MAJOR/bin libdir=/usr/lib/postgresql/$PG_MAJOR/lib
    local sharedir=/usr/share/postgresql/$PG_MAJOR
    ensure_apt "postgresql-$PG_MAJOR" "$bindir/postgres"
    local b bins=()
    for b in postgres initdb pg_ctl pg_basebackup pg_isready psql pg_controldata pg_rewind \
        pg_resetwal pg_dump pg_dumpall pg_restore pg_archivecleanup; do
        [[ -x $bindir/$b ]] && bins+=("$bindir/$b")
    done
    add_elf "${bins[@]}"
    if [[ -L $bindir/postmaster ]]; then add_path "$bindir/postmaster"; fi
    # Server modules ($libdir) and what they link; LLVM JIT (libLLVM, ~100 MB) and the build-only
    # parts (bitcode, pgxs) are left out, so the server runs with jit = off.
    add_tree "$libdir" -path "*/bitcode" -prune -o -path "*/pgxs" -prune -o -name 'llvmjit*' -prune -o
    local so deps dep
    while IFS= read -r -d '' so; do
        if deps=$(ldd_deps "$so" 2>/dev/null); then
            for dep in $deps; do add_path "$dep"; done
        else
            log "leaving out $(basename "$so"): its libraries are not all installed here"
            rm -f "$ROOTFS$so"
        fi
    done < <(find "$ROOTFS$(readlink -f "$libdir")" -name '*.so' -print0)
    add_tree "$sharedir" -path "*/man" -prune -o
    add_tree /usr/share/zoneinfo # Debian builds with --with-system-tzdata
    add_busybox
    add_user postgres /var/lib/postgresql
    install -m 755 "$HERE/postgres/pg-entrypoint" "$ROOTFS/usr/local/bin/pg-entrypoint"
    # /var/lib/postgresql and its data/, owned by postgres (one COPY --chown in the Dockerfile)
    mkdir -p "$CONTEXT/pg-home/data"
    chmod 755 "$CONTEXT/pg-home" "$CONTEXT/pg-home/data"
}

assemble_haproxy() {
    ensure_apt haproxy /usr/sbin/haproxy
    add_elf "$(readlink -f /usr/sbin/haproxy)"
    if [[ -L /usr/sbin/haproxy ]]; then add_path /usr/sbin/haproxy; fi
    add_busybox
    add_user haproxy /var/lib/haproxy
    mkdir -p "$ROOTFS/usr/local/etc/haproxy"
}

assemble_garage() {
    [[ -n $GARAGE_BIN && -x $GARAGE_BIN ]] ||
        die "no garage binary: 'cargo install garage --version 2.5.0' (or set GARAGE_BIN)"
    install_bin "$GARAGE_BIN" /usr/local/bin/garage
    add_busybox
    add_user garage /var/lib/garage
    install -m 644 "$HERE/garage/garage.toml" "$ROOTFS/etc/garage.toml"
    install -m 755 "$HERE/garage/garage-entrypoint" "$ROOTFS/usr/local/bin/garage-entrypoint"
}

assemble_pkgnode() {
    [[ -x $PKGNODE_BIN ]] || die "no pkgnode binary at $PKGNODE_BIN: build it with
    cargo build --release -p node
(or point PKGNODE_BIN at a built binary)"
    install_bin "$PKGNODE_BIN" /usr/local/bin/pkgnode
    add_busybox
    add_user pkgnode /var/lib/pkgnode
    mkdir -p "$ROOTFS/etc/pkgnode"
    install -m 644 "$HERE/pkgnode/node.toml" "$ROOTFS/etc/pkgnode/node.toml"
}

# ---------------------------------------------------------------------------------------------

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pkgcluster-images.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

declare -A TIMES=()
TOTAL_START=$(now)
for name in "${WANTED[@]}"; do
    tag=$PREFIX/$name:$VERSION
    if [[ $FORCE -eq 0 ]] && docker image inspect "$tag" >/dev/null 2>&1; then
        log "$tag exists, skipped (--force rebuilds)"
        TIMES[$name]=skipped
        continue
    fi
    start=$(now)
    old_id=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
    CONTEXT=$WORK/$name
    mkdir -p "$CONTEXT"
    new_rootfs "$CONTEXT/rootfs"
    # Each Dockerfile copies this empty directory with --chown onto the directories its user
    # owns (one COPY per directory, so that their parents stay root's).
    mkdir -p "$CONTEXT/empty"
    chmod 755 "$CONTEXT/empty"
    "assemble_$name"
    cp "$HERE/$name/Dockerfile" "$CONTEXT/Dockerfile"
    log "building $tag ($(du -sh "$CONTEXT" | cut -f1) context)"
    # Every Dockerfile instruction is a container commit for the legacy builder (about 1 s each
    # on this engine), so the Dockerfiles are short and there is one label per image.
    label="org.opencontainers.image.version=$VERSION"
    if [[ $name == pkgnode ]]; then
        # The tag is the workspace version, which does not move with every build of the node: the
        # binary's digest lets a caller tell a stale image (compare, then --force).
        label="pkgcluster.pkgnode.sha256=$(sha256sum <"$PKGNODE_BIN" | cut -d' ' -f1)"
    fi
    # The engine's own output (the legacy builder's deprecation notice among it) only on failure.
    docker build --label "$label" -t "$tag" "$CONTEXT" >"$WORK/$name.build.log" 2>&1 ||
        { cat "$WORK/$name.build.log" >&2; die "docker build of $tag failed"; }
    rm -rf "$CONTEXT"
    # --force: the image the tag named before is left untagged; remove it unless a container
    # still uses it.
    if [[ -n $old_id && $old_id != $(docker image inspect -f '{{.Id}}' "$tag") ]]; then
        docker rmi "$old_id" >/dev/null 2>&1 || log "kept the previous $tag image ${old_id:7:12} (in use)"
    fi
    TIMES[$name]=$(elapsed "$start" "$(now)")
    log "built $tag in ${TIMES[$name]} s"
done
total=$(elapsed "$TOTAL_START" "$(now)")

echo "image                          build time"
for name in "${WANTED[@]}"; do
    t=${TIMES[$name]}
    [[ $t == skipped ]] || t="$t s"
    printf '%-30s %s\n' "$PREFIX/$name:$VERSION" "$t"
done
printf '%-30s %s\n' "total" "$total s"
