#!/usr/bin/env bash
# Builds the static release binary (x86_64-unknown-linux-musl) and runs it in an empty
# root: a chroot holding only the binary, a CA bundle and a copy of the example prompts
# (this repository's prompts/ and environments.yaml, committed into a fresh Git
# repository). There it must print --version, pass `check`, `sync` the example into a
# scratch PostgreSQL database, and `serve` must answer /healthz (asked by the binary's own
# `healthcheck`, as the container's HEALTHCHECK asks it) and /readyz, and serve the synced
# prompts with a token. Prints the figures: build time, binary size, `file` and `ldd`.
#
#   scripts/musl-chroot.sh
#
# chroot and apt-get run as root: directly when the script is root, else through sudo (as
# on GitHub's runners); the build runs as the caller.
#
# Prepares the machine first when needed: `rustup target add x86_64-unknown-linux-musl` and
# Debian's `musl-tools` (musl-gcc compiles the C inside: libgit2, zlib, ring). PostgreSQL
# is the one at PROMPTCTL_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres,
# reachable from the chroot: it shares the network namespace); without one, sync and
# /readyz are skipped with a note and /healthz must still answer. The build goes to
# ${CARGO_TARGET_DIR:-target}. Not part of .ci/run: a cold release build takes ~20 minutes
# on 2 cores.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
target=x86_64-unknown-linux-musl
target_dir="${CARGO_TARGET_DIR:-target}"
admin_url="${PROMPTCTL_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
as_root() { "${sudo[@]}" "$@"; }

echo "--- preparing"
if ! rustup target list --installed | grep -qx "$target"; then
  rustup target add "$target"
fi
if ! command -v musl-gcc >/dev/null 2>&1; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools >/dev/null
fi
for tool in file git curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool is needed" >&2; exit 2; }
done
ca_bundle="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
[ -s "$ca_bundle" ] || { echo "error: no CA bundle at $ca_bundle (set CA_BUNDLE)" >&2; exit 2; }

echo "--- cargo build --release --target $target"
# cc-rs would look for x86_64-linux-musl-gcc; Debian's musl-tools calls it musl-gcc.
export CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-musl-gcc}"
started=$(date +%s)
cargo build --release --locked --target "$target"
build_seconds=$(($(date +%s) - started))
binary="$target_dir/$target/release/promptctl"

echo "--- the binary"
description="$(file -b "$binary")"
ldd_says="$(ldd "$binary" 2>&1 || true)"
echo "file: $description"
echo "ldd: $ldd_says"
case "$description" in
  *"statically linked"* | *"static-pie linked"*) ;;
  *) echo "error: not a static binary" >&2; exit 1 ;;
esac
size=$(stat -c %s "$binary")

root="$(mktemp -d)"
server=""
database=""
cleanup() {
  if [ -n "$server" ]; then
    as_root kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  if [ -n "$database" ]; then
    psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  as_root rm -rf "$root"
}
trap cleanup EXIT

echo "--- the empty root: $root"
install -D -m 0755 "$binary" "$root/promptctl"
# The archives cargo-dist makes hold the binary as built; its size without debug info:
stripped="$(mktemp)"
strip -o "$stripped" "$binary"
stripped_size=$(stat -c %s "$stripped")
rm -f "$stripped"
install -D -m 0644 "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt"
mkdir -p "$root/repo"
cp -R prompts environments.yaml "$root/repo/"
git -C "$root/repo" init -q -b main
git -C "$root/repo" add -A
git -C "$root/repo" -c user.name=promptctl -c user.email=promptctl@example.invalid \
  commit -q -m "the example prompts"
# Owned by root, who runs it in the chroot: libgit2 opens only a repository its user owns.
as_root chown -R 0:0 "$root"
(cd "$root" && find . -path ./repo -prune -o -print | sort)

in_root() { as_root chroot "$root" /promptctl "$@"; }

echo "--- --version"
in_root --version
echo "--- check"
in_root -C /repo --color never check

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if command -v psql >/dev/null 2>&1 && psql -q "$admin_url" -c "SELECT 1" >/dev/null 2>&1; then
  database="promptctl_chroot_$$"
  psql -q "$admin_url" -c "CREATE DATABASE $database" >/dev/null
  database_url="$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$admin_url" "$database")"
  echo "--- sync into $database"
  in_root -C /repo --color never sync --database-url "$database_url"
else
  database_url="postgres://postgres@127.0.0.1:1/none"
  echo "note: no PostgreSQL at $admin_url: sync and /readyz skipped; serve runs without a database"
fi

echo "--- serve on 127.0.0.1:$port"
"${sudo[@]}" env PROMPTCTL_READ_TOKENS=chroot-read RUST_LOG=warn chroot "$root" /promptctl serve \
  --listen "127.0.0.1:$port" --database-url "$database_url" &
server=$!
healthy=false
for _ in $(seq 1 100); do
  if in_root healthcheck --timeout 1 --url "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
    healthy=true
    break
  fi
  sleep 0.1
done
[ "$healthy" = true ] || { echo "error: serve did not answer /healthz" >&2; exit 1; }
in_root healthcheck --url "http://127.0.0.1:$port/healthz"
echo "/healthz: $(curl -sS "http://127.0.0.1:$port/healthz")"
if [ -n "$database" ]; then
  in_root healthcheck --url "http://127.0.0.1:$port/readyz"
  prompts=$(curl -sS -f -H "Authorization: Bearer chroot-read" "http://127.0.0.1:$port/v1/prompts" |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)["prompts"]))')
  echo "/v1/prompts: $prompts prompts"
  [ "$prompts" -gt 0 ] || { echo "error: no prompts served" >&2; exit 1; }
fi

echo "--- figures"
echo "build time: ${build_seconds} s (cargo build --release --locked --target $target)"
echo "binary size: $size bytes ($((size / 1024 / 1024)) MiB); stripped: $stripped_size bytes ($((stripped_size / 1024 / 1024)) MiB)"
echo "file: $description"
echo "ldd: $ldd_says"
echo "musl chroot: all passed"
