#!/usr/bin/env bash
# The README's two commands on a plain Debian 12, as a new user runs them: a container from a Debian bookworm
# base (scripts/base-image.sh: the public image, or one made with debootstrap), Debian's own python3.11, a user
# who is not root, a fresh clone of this repository's HEAD, then `make demo` and `make test` as written.
#
#   scripts/plain_debian_check.sh            # everything: set-up, the demo, the whole test suite (~40+ min)
#   QUICK=1 scripts/plain_debian_check.sh    # the demo, then `make test`'s set-up only (build, libs, nextest)
#   KEEP=1 ...                               # keep the container afterwards (docker exec -it -u dev NAME bash)
#
# What a new user installs, in order (README.md, "Two commands"):
#   1. rustup's own prerequisites and a C toolchain: build-essential (gcc, make), curl, ca-certificates, git;
#      and Debian's python3.11 alone. Set-up must then refuse, printing the packages to add (checked here).
#   2. The packages set-up names: python3.11-venv libpython3.11-dev. Then `make demo` and `make test` must pass.
# Substitutions, because this machine's containers cannot download a Rust toolchain: the host's rustup binary
# is the container user's ~/.cargo/bin/rustup (with the proxies rustup makes: cargo, rustc, ...; not the host's
# cargo-nextest, so set-up has to install it); its ~/.rustup links to the host's toolchains, mounted read-only
# (RUSTUP_AUTO_INSTALL=0: rust-toolchain.toml's version must be one of them). Certificate authorities the host added (EXTRA_CA_DIR, for an egress proxy that re-signs TLS) are trusted in the container.
# Needs Docker (no registry needed), and root plus debootstrap the first time the base image is made.
# Logs and timings: target/plain-debian/ (LOG_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
quick=${QUICK:-0}
keep=${KEEP:-0}
log_dir=${LOG_DIR:-$repo/target/plain-debian}
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
rustup_bin=$(command -v rustup || echo "$HOME/.cargo/bin/rustup")
extra_ca=${EXTRA_CA_DIR:-/usr/local/share/ca-certificates}
name=microlambda-plain-debian-$$
mkdir -p "$log_dir"
: >"$log_dir/timings.txt"

base=$(scripts/base-image.sh debian:bookworm-slim microlambda-base:bookworm)
echo "plain-debian: base image $base; container $name; logs in $log_dir"
[ "$keep" = 1 ] || trap 'docker rm -f "$name" >/dev/null 2>&1 || true' EXIT
ca_mount=()
[ -d "$extra_ca" ] && ca_mount=(-v "$extra_ca:/tmp/host-ca:ro")
docker run -d --name "$name" \
  -v "$repo:/src:ro" \
  -v "$rustup_home/toolchains:/opt/host-rustup/toolchains:ro" \
  -v "$(readlink -f "$rustup_bin"):/opt/host-rustup/rustup:ro" \
  "${ca_mount[@]}" \
  -e RUSTUP_AUTO_INSTALL=0 \
  -e PATH=/home/dev/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  "$base" sleep infinity >/dev/null

as_root() { docker exec -u 0 "$name" bash -euo pipefail -c "$1"; }
as_dev() { docker exec -u dev -w /home/dev "$name" bash -euo pipefail -c "$1"; }
# step NAME COMMAND...: run it, its output to LOG_DIR/NAME.log, its time to timings.txt; stop on failure.
step() {
  local what=$1; shift
  local t0=$SECONDS
  echo "plain-debian: $what ..."
  if "$@" >"$log_dir/$what.log" 2>&1; then
    echo "$what: ok in $((SECONDS - t0)) s" | tee -a "$log_dir/timings.txt"
  else
    echo "$what: FAILED after $((SECONDS - t0)) s (last lines of $log_dir/$what.log):" | tee -a "$log_dir/timings.txt"
    tail -n 40 "$log_dir/$what.log"
    exit 1
  fi
}

# 1. The machine: Debian's packages for rustup (curl, ca-certificates), a C toolchain and make, git, python3.11.
step apt-base as_root '
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    build-essential curl ca-certificates git python3.11
  if ls /tmp/host-ca/*.crt >/dev/null 2>&1; then cp /tmp/host-ca/*.crt /usr/local/share/ca-certificates/; update-ca-certificates; fi
  useradd --create-home --shell /bin/bash dev'
# What rustup's installer leaves in ~/.cargo/bin: rustup and its proxies (and no cargo-nextest); in ~/.rustup
# the toolchains (the host's: a toolchain that is a link to another is linked to that one's mount).
step rustup as_dev '
  mkdir -p ~/.cargo/bin ~/.rustup/toolchains
  for t in /opt/host-rustup/toolchains/*; do
    target=$(readlink "$t" || true)
    ln -s "/opt/host-rustup/toolchains/$(basename "${target:-$t}")" ~/.rustup/toolchains/"$(basename "$t")"
  done
  cp /opt/host-rustup/rustup ~/.cargo/bin/rustup
  for p in cargo rustc rustdoc cargo-fmt cargo-clippy rustfmt clippy-driver rust-gdb rust-lldb; do
    ln -sf rustup ~/.cargo/bin/$p; done
  git config --global --add safe.directory "*"
  git clone -q /src microlambda
  cd microlambda && rustup show active-toolchain && cargo --version && ! command -v cargo-nextest'

# 2. Set-up refuses Debian's python3.11 alone and names the packages to add.
refused() {
  as_dev 'cd microlambda && if make setup; then echo "set-up accepted a python3.11 without venv/libpython3.11-dev"; exit 1; fi' \
    >"$log_dir/setup-refuses.out" 2>&1 || { cat "$log_dir/setup-refuses.out"; return 1; }
  cat "$log_dir/setup-refuses.out"
  grep -q 'apt-get install python3.11 python3.11-venv libpython3.11-dev' "$log_dir/setup-refuses.out"
}
step setup-refuses refused
step apt-python as_root 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3.11-venv libpython3.11-dev'

# `make test`'s browser test needs a chromium; a user who is not root (and has no sudo) is told by `make
# setup-browser` to install it: the root of this machine does so, as its administrator would.
step apt-browser as_root 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium'

# 3. The README's two commands, as written.
step make-demo as_dev 'cd microlambda && make demo'
if [ "$quick" = 1 ]; then
  step make-test-setup as_dev 'cd microlambda && make build setup-libs setup-browser test-python nextest && cargo nextest list --workspace >/dev/null'
else
  # The container has no Docker engine of its own: the compose phase (real containers) is left to the host.
  step make-test as_dev 'cd microlambda && make test COMPOSE_TESTS=0'
fi
echo "plain-debian: all passed"; cat "$log_dir/timings.txt"
