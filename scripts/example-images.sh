#!/usr/bin/env bash
# Builds the Docker images of the examples without a registry: each is one
# static Go binary in an otherwise empty image (docker import of a tar).
#
#   dms-examples/hello:latest   examples/hello (prints a greeting and its args)
#   dms-examples/web:latest     examples/web   (web serve ADDR TEXT | web fetch URL)
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for name in hello web; do
  CGO_ENABLED=0 GOOS=linux go build -trimpath -o "$tmp/$name" "./examples/$name"
  tar -C "$tmp" -cf "$tmp/$name.tar" "$name"
  docker import --change "ENTRYPOINT [\"/$name\"]" "$tmp/$name.tar" "dms-examples/$name:latest" >/dev/null
  echo "built dms-examples/$name:latest"
done
