#!/usr/bin/env bash
# Installs a released promptctl for this machine, as the composite action (action.yml) does:
# downloads the release's archive for the OS and architecture and its `.sha256`, refuses
# an archive whose SHA-256 differs (exit 1), unpacks it and prints the folder holding the
# binary. Exit 3 when there is nothing to install: the version is no release tag
# (vX.Y.Z...), or the release has no archive for this machine (then build from source).
#
#   scripts/install-release.sh REPOSITORY VERSION DIR    # e.g. your-org/promptctl v0.2.0 /tmp/p
#
# PROMPTCTL_RELEASE_BASE_URL replaces https://github.com/REPOSITORY/releases/download (the
# tests serve a release from a local folder); PROMPTCTL_TARGET replaces the detected target.
set -euo pipefail

if [ "$#" -ne 3 ]; then
  echo "usage: $0 REPOSITORY VERSION DIR" >&2
  exit 2
fi
repository="$1"
version="$2"
dir="$3"

if ! [[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]]; then
  echo "promptctl: $version is no release tag" >&2
  exit 3
fi

target="${PROMPTCTL_TARGET:-}"
if [ -z "$target" ]; then
  case "$(uname -s)/$(uname -m)" in
    Linux/x86_64) target=x86_64-unknown-linux-musl ;;
    Linux/aarch64 | Linux/arm64) target=aarch64-unknown-linux-musl ;;
    Darwin/x86_64) target=x86_64-apple-darwin ;;
    Darwin/arm64) target=aarch64-apple-darwin ;;
    MINGW*/x86_64 | MSYS*/x86_64 | CYGWIN*/x86_64) target=x86_64-pc-windows-msvc ;;
    *)
      echo "promptctl: no release build for $(uname -s)/$(uname -m)" >&2
      exit 3
      ;;
  esac
fi
case "$target" in
  *windows*) archive="promptctl-$target.zip" ;;
  *) archive="promptctl-$target.tar.xz" ;;
esac
base="${PROMPTCTL_RELEASE_BASE_URL:-https://github.com/$repository/releases/download}/$version"

mkdir -p "$dir"
if ! curl -fsSL --retry 3 -o "$dir/$archive" "$base/$archive" \
  || ! curl -fsSL --retry 3 -o "$dir/$archive.sha256" "$base/$archive.sha256"; then
  echo "promptctl: no $archive in release $version of $repository" >&2
  exit 3
fi

expected="$(cut -d ' ' -f 1 <"$dir/$archive.sha256" | tr -d '\r\n')"
if command -v sha256sum >/dev/null 2>&1; then
  actual="$(sha256sum "$dir/$archive" | cut -d ' ' -f 1)"
else
  actual="$(shasum -a 256 "$dir/$archive" | cut -d ' ' -f 1)"
fi
if [ "$expected" != "$actual" ]; then
  echo "promptctl: checksum mismatch for $archive: the release says $expected, the download is $actual" >&2
  rm -f "$dir/$archive"
  exit 1
fi

case "$archive" in
  *.zip) unzip -q -o "$dir/$archive" -d "$dir" ;;
  *) tar -xJf "$dir/$archive" -C "$dir" ;;
esac
binary="$(find "$dir" -type f \( -name promptctl -o -name promptctl.exe \) | head -n 1)"
if [ -z "$binary" ]; then
  echo "promptctl: $archive holds no promptctl binary" >&2
  exit 1
fi
chmod +x "$binary"
dirname "$binary"
