#!/usr/bin/env bash
# Builds pkgcluster/pkgnode-builders:TAG, the node image of git-builders runs: a Debian root file
# system with git, R and Python 3 (build, setuptools, wheel) — the packages listed in
# docker/pkgnode-builders/packages — plus the pkgnode binary, made offline from Debian's packages
# (no registry, nothing pulled):
#
#   debootstrap --variant=minbase --include=PACKAGES bookworm ROOT $DEBIAN_MIRROR
#   tar -C ROOT -c . (+ pkgnode, node.toml) | docker import - pkgcluster/pkgnode-builders:TAG
#
# The root is cached under $PKGCLUSTER_BUILDERS_CACHE (default
# ${XDG_CACHE_HOME:-~/.cache}/pkgcluster/builders-root), named by its own digest (recipe, suite,
# architecture, package list): a build for a new pkgnode binary only imports again (seconds).
# TAG is the first 16 hex digits of the image's digest (the root's digest, the binary's sha256,
# the default config and the image settings); the labels `pkgcluster.builders.digest` (all 64)
# and `pkgcluster.pkgnode.sha256` say what it holds. An image whose tag exists is reused unless
# --force. Prints the image reference (and nothing else) on standard output.
#
# Usage: docker/build-builders-image.sh [--force]
# Environment: PKGNODE_BIN (default <repo>/target/release/pkgnode), PKGCLUSTER_BUILDERS_CACHE,
# DEBIAN_MIRROR (default http://deb.debian.org/debian), IMAGE_PREFIX (default pkgcluster).
# Building needs root (debootstrap, and reading the root's files); reusing an image does not.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
PREFIX=${IMAGE_PREFIX:-pkgcluster}
IMAGE_REPOSITORY=$PREFIX/pkgnode-builders
PKGNODE_BIN=${PKGNODE_BIN:-$REPO/target/release/pkgnode}
PACKAGES_FILE=$HERE/pkgnode-builders/packages
NODE_TOML=$HERE/pkgnode/node.toml
SUITE=bookworm # the machines' Debian: the pkgnode binary built here links against its glibc
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${PKGCLUSTER_BUILDERS_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/pkgcluster/builders-root}
# Bump when prepare_root below changes what it makes of the bootstrapped root.
ROOT_RECIPE=1
IMAGE_UID=999 # the pkgnode user, as in the FROM-scratch pkgnode image
# Images of this repository kept (newest first) when a new one is built: other worktrees' and
# concurrent runs' images stay; older ones are removed unless a container uses them.
KEEP_IMAGES=4

usage() {
    sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

FORCE=0
for arg in "$@"; do
    case $arg in
        --force | -f) FORCE=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "build-builders-image: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

die() { echo "build-builders-image: $*" >&2; exit 1; }
log() { echo "build-builders-image: $*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
sha256() { sha256sum | cut -d' ' -f1; }

command -v docker >/dev/null || die "docker is not installed"
[[ -x $PKGNODE_BIN ]] || die "no pkgnode binary at $PKGNODE_BIN: build it with
    cargo build --release -p node
(or point PKGNODE_BIN at a built binary)"
[[ -f $PACKAGES_FILE ]] || die "missing $PACKAGES_FILE"

ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)
PACKAGES=$(grep -v '^[[:space:]]*\(#\|$\)' "$PACKAGES_FILE" | tr -s ' \t\n' ',' | sed 's/^,//; s/,$//')
ROOT_DIGEST=$(printf 'recipe=%s suite=%s arch=%s\n%s\n' "$ROOT_RECIPE" "$SUITE" "$ARCH" "$PACKAGES" | sha256)
PKGNODE_SHA=$(sha256 <"$PKGNODE_BIN")

# What `docker import` makes of the root: the same user, environment and entrypoint as the
# FROM-scratch pkgnode image (docker/pkgnode/Dockerfile).
CHANGES=(
    "ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    "ENV PKGNODE_CONFIG=/etc/pkgnode/node.toml"
    "ENV LANG=C.UTF-8"
    "USER $IMAGE_UID:$IMAGE_UID"
    "EXPOSE 4242"
    'ENTRYPOINT ["/usr/local/bin/pkgnode", "--config", "/etc/pkgnode/node.toml", "serve"]'
)
DIGEST=$({
    printf 'root=%s pkgnode=%s\n' "$ROOT_DIGEST" "$PKGNODE_SHA"
    printf '%s\n' "${CHANGES[@]}"
    cat "$NODE_TOML"
} | sha256)
TAG=$IMAGE_REPOSITORY:${DIGEST:0:16}

if [[ $FORCE -eq 0 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
    log "$TAG exists, reused (--force rebuilds)"
    echo "$TAG"
    exit 0
fi
[[ $(id -u) -eq 0 ]] || die "building $TAG needs root (debootstrap, and reading the root's files): run $0 as root once"

# The root file system: bootstrapped into a staging directory, then renamed into the cache.
prepare_root() {
    local root=$1
    # Package caches, documentation and translations: about 200 MB nothing here reads.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
        "$root"/usr/share/locale/* "$root"/var/log/* "$root"/dev/*
    # The engine provides these at run time.
    rm -f "$root"/etc/hostname "$root"/etc/resolv.conf
    grep -q "^[^:]*:[^:]*:$IMAGE_UID:" "$root/etc/passwd" && die "uid $IMAGE_UID is taken in the root"
    echo "pkgnode:x:$IMAGE_UID:$IMAGE_UID:pkgnode:/var/lib/pkgnode:/usr/sbin/nologin" >>"$root/etc/passwd"
    echo "pkgnode:x:$IMAGE_UID:" >>"$root/etc/group"
    mkdir -p "$root/var/lib/pkgnode" "$root/etc/pkgnode" "$root/usr/local/bin"
    chown "$IMAGE_UID:$IMAGE_UID" "$root/var/lib/pkgnode"
    chmod 755 "$root" "$root/var/lib/pkgnode" "$root/etc/pkgnode"
}

ROOT=$CACHE/$ROOT_DIGEST
START=$(now)
if [[ -f $ROOT/.complete ]]; then
    log "root file system cached: $ROOT"
    ROOT_HOW="cached"
else
    if ! command -v debootstrap >/dev/null; then
        log "installing debootstrap"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends debootstrap >&2 ||
            die "could not install debootstrap (apt-get install debootstrap)"
    fi
    mkdir -p "$CACHE"
    STAGING=$CACHE/.$ROOT_DIGEST.partial.$$
    trap 'rm -rf "$STAGING"' EXIT
    rm -rf "$STAGING"
    mkdir -p "$STAGING"
    log "debootstrap $SUITE ($PACKAGES) from $MIRROR into $STAGING"
    debootstrap --variant=minbase --arch="$ARCH" --include="$PACKAGES" \
        "$SUITE" "$STAGING" "$MIRROR" >"$STAGING.log" 2>&1 ||
        { tail -n 30 "$STAGING.log" >&2; rm -f "$STAGING.log"; die "debootstrap failed"; }
    rm -f "$STAGING.log"
    prepare_root "$STAGING"
    touch "$STAGING/.complete"
    rm -rf "$ROOT"
    mv "$STAGING" "$ROOT"
    trap - EXIT
    # Roots of other recipes or package lists are not used again.
    find "$CACHE" -mindepth 1 -maxdepth 1 -type d -regextype egrep -regex '.*/[0-9a-f]{64}' \
        ! -name "$ROOT_DIGEST" -exec rm -rf {} +
    ROOT_HOW="bootstrapped in $(elapsed "$START" "$(now)") s"
    log "root file system $ROOT_HOW ($(du -sh "$ROOT" | cut -f1))"
fi

IMPORT_START=$(now)
EXTRA=$(mktemp -d "${TMPDIR:-/tmp}/pkgnode-builders.XXXXXX")
trap 'rm -rf "$EXTRA"' EXIT
mkdir -p "$EXTRA/usr/local/bin" "$EXTRA/etc/pkgnode"
install -m 755 "$PKGNODE_BIN" "$EXTRA/usr/local/bin/pkgnode"
install -m 644 "$NODE_TOML" "$EXTRA/etc/pkgnode/node.toml"
old_id=$(docker image inspect -f '{{.Id}}' "$TAG" 2>/dev/null || true)
import_args=()
for change in "${CHANGES[@]}"; do import_args+=(--change "$change"); done
import_args+=(--change "LABEL pkgcluster.builders.digest=$DIGEST")
import_args+=(--change "LABEL pkgcluster.pkgnode.sha256=$PKGNODE_SHA")
# One stream: the cached root, then the two files (their directories are in the root already).
tar --numeric-owner -C "$ROOT" --exclude=./.complete -c . \
    -C "$EXTRA" ./usr/local/bin/pkgnode ./etc/pkgnode/node.toml |
    docker import "${import_args[@]}" - "$TAG" >/dev/null ||
    die "docker import of $TAG failed"
if [[ -n $old_id && $old_id != $(docker image inspect -f '{{.Id}}' "$TAG") ]]; then
    docker rmi "$old_id" >/dev/null 2>&1 || true
fi
# Older images of this repository beyond the newest few (`image ls` lists newest first).
docker image ls "$IMAGE_REPOSITORY" --format '{{.Repository}}:{{.Tag}}' | tail -n +$((KEEP_IMAGES + 1)) |
    while read -r stale; do
        docker rmi "$stale" >/dev/null 2>&1 && log "removed $stale" || true
    done
SIZE=$(docker image inspect -f '{{.Size}}' "$TAG" | awk '{ printf "%.0f MB", $1 / 1e6 }')
log "imported $TAG in $(elapsed "$IMPORT_START" "$(now)") s ($SIZE; root $ROOT_HOW); total $(elapsed "$START" "$(now)") s"
echo "$TAG"
