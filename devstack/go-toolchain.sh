#!/usr/bin/env bash
# Print the path of a Go toolchain at least as new as the one asked for (docker compose's go.mod
# needs 1.24.9 or later).
# The installed `go` if it is; else Debian's older Go fetches the official toolchain module
# golang.org/toolchain@v0.0.1-<version>.<os>-<arch> from the Go module proxy (what GOTOOLCHAIN
# does in Go >= 1.21) and we print its bin/go. Usage: devstack/go-toolchain.sh go1.24.11 [--force]
set -euo pipefail
want=${1:?usage: go-toolchain.sh goX.Y.Z [--force]}
have=$(go env GOVERSION)
# The installed Go if it is at least $want (version order, e.g. go1.24.9 < go1.24.11 < go1.25.0).
if [ "${2:-}" != --force ] && [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n 1)" = "$want" ]; then
  command -v go
  exit 0
fi
arch=$(go env GOARCH)
dir=$(GOFLAGS=-mod=mod GOTOOLCHAIN=local go mod download -json "golang.org/toolchain@v0.0.1-${want}.linux-${arch}" \
      | sed -nE 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p' || true)
[ -f "$dir/bin/go" ] || { echo "could not fetch Go toolchain $want from the module proxy" >&2; exit 1; }
# The module cache is read-only and zips keep no executable bits: use a copy with them.
dest=$(cd "$(dirname "$0")/.." && pwd)/.cache/go-toolchain/$want
if [ ! -x "$dest/bin/go" ]; then
  rm -rf "$dest.partial"; mkdir -p "$(dirname "$dest")"
  cp -r "$dir" "$dest.partial"; chmod -R u+w "$dest.partial"
  chmod +x "$dest.partial"/bin/* "$dest.partial"/pkg/tool/*/*
  mv "$dest.partial" "$dest"
fi
echo "$dest/bin/go"
