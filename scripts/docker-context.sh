#!/usr/bin/env bash
# Lays out the build context of the root Dockerfile in DIR: the CA bundle and a static
# promptctl for each architecture given. Nothing is compiled: each SOURCE is a promptctl
# binary or a release archive (.tar.xz, .tar.gz, .zip) holding one, and must be statically
# linked (the image has no libc).
#
#   scripts/docker-context.sh DIR amd64=SOURCE [arm64=SOURCE]
#   docker build -t promptctl DIR        # or: podman build / buildah bud, with -f Dockerfile
#
# The CA bundle is /etc/ssl/certs/ca-certificates.crt (Debian, Ubuntu), or CA_BUNDLE.
set -euo pipefail

usage() {
  echo "usage: $0 DIR ARCH=SOURCE... (ARCH: amd64 or arm64; SOURCE: a binary or a release archive)" >&2
  exit 2
}
[ "$#" -ge 2 ] || usage
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$1"
shift
ca_bundle="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
if [ ! -s "$ca_bundle" ]; then
  echo "error: no CA bundle at $ca_bundle (install ca-certificates, or set CA_BUNDLE)" >&2
  exit 1
fi

mkdir -p "$dir"
cp "$root/Dockerfile" "$dir/Dockerfile"
cp "$ca_bundle" "$dir/ca-certificates.crt"
chmod 0644 "$dir/ca-certificates.crt"

for pair in "$@"; do
  arch="${pair%%=*}"
  source="${pair#*=}"
  case "$arch" in amd64 | arm64) ;; *) usage ;; esac
  [ -f "$source" ] || { echo "error: no file $source" >&2; exit 1; }
  mkdir -p "$dir/bin/$arch"
  case "$source" in
    *.tar.xz | *.tar.gz | *.zip)
      unpacked="$(mktemp -d)"
      case "$source" in
        *.zip) unzip -q "$source" -d "$unpacked" ;;
        *) tar -xf "$source" -C "$unpacked" ;;
      esac
      binary="$(find "$unpacked" -type f -name promptctl | head -n 1)"
      [ -n "$binary" ] || { echo "error: no promptctl in $source" >&2; exit 1; }
      cp "$binary" "$dir/bin/$arch/promptctl"
      rm -rf "$unpacked"
      ;;
    *) cp "$source" "$dir/bin/$arch/promptctl" ;;
  esac
  chmod 0755 "$dir/bin/$arch/promptctl"
  description="$(file -b "$dir/bin/$arch/promptctl")"
  case "$description" in
    *"statically linked"* | *"static-pie linked"*) ;;
    *)
      echo "error: $source is not a static binary ($description); build the *-unknown-linux-musl target" >&2
      exit 1
      ;;
  esac
  echo "$arch: $description"
done
echo "context ready: $dir"
