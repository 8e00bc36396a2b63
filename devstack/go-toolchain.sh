#!/usr/bin/env bash
# Print the path of a Go toolchain new enough to build docker compose (>= 1.23).
# The installed `go` if it is; else Debian's older Go fetches the official toolchain module
# golang.org/toolchain@v0.0.1-<version>.<os>-<arch> from the Go module proxy (what GOTOOLCHAIN
# does in Go >= 1.21) and we print its bin/go. Usage: devstack/go-toolchain.sh go1.24.11 [--force]
set -euo pipefail
want=${1:?usage: go-toolchain.sh goX.Y.Z [--force]}
minor() { go version | sed -E 's/.*go1\.([0-9]+).*/\1/'; }
if [ "${2:-}" != --force ] && [ "$(minor)" -ge 23 ]; then
  command -v go
  exit 0
fi
arch=$(go env GOARCH)
dir=$(GOFLAGS=-mod=mod GOTOOLCHAIN=local go mod download -json "golang.org/toolchain@v0.0.1-${want}.linux-${arch}" \
      | sed -nE 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p')
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
