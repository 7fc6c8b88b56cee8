#!/usr/bin/env bash
# Builds ZincSearch v0.4.10, the Elasticsearch-API server the log sink's
# integration tests ship to, into $(go env GOPATH)/bin/zincsearch. It is a
# test fixture, not part of dms (docs/observability.md, "Logs").
#
# `go install` of v0.4.10 fails here for three reasons, so the build works
# around each, in a scratch folder outside the repository:
#   1. the module proxy refuses its version list: the exact version is asked;
#   2. its embed.go embeds web/dist, which is not in the module zip: a copy of
#      the module source gets a stub web/dist/index.html;
#   3. a dependency (godeltaprof v0.1.2) does not compile with Go 1.26: the
#      build uses Go 1.21.13 (GOTOOLCHAIN, fetched from the module proxy).
#
# Idempotent: does nothing when the installed binary is already v0.4.10.
set -euo pipefail
version=v0.4.10
bin=$(go env GOPATH)/bin/zincsearch
if go version -m "$bin" 2>/dev/null | grep -q "mod[[:space:]]*github.com/zincsearch/zincsearch[[:space:]]*$version"; then
  echo "zincsearch $version already installed at $bin"
  exit 0
fi
scratch=$(mktemp -d "${TMPDIR:-/tmp}/zincsearch-build.XXXXXX")
trap 'chmod -R u+w "$scratch" 2>/dev/null; rm -rf "$scratch"' EXIT
cd "$scratch"
export GOFLAGS=-mod=mod GOWORK=off
# Fetch the module source (exact version: the proxy refuses the list).
go mod download -json "github.com/zincsearch/zincsearch@$version" >dl.json
src=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' dl.json)
[ -d "$src" ] || { echo "zincsearch.sh: module source not found" >&2; exit 1; }
cp -r "$src" zincsrc
chmod -R u+w zincsrc
mkdir -p zincsrc/web/dist
echo '<!doctype html><title>zincsearch</title>' >zincsrc/web/dist/index.html
# zinc's own replace lines (bluge, bluge_segment_api, ice), copied from its go.mod.
replaces=$(grep -E '^[[:space:]]*(replace[[:space:]]+)?github.com/blugelabs/[^ ]+ .*=>' zincsrc/go.mod |
  sed -E 's/^[[:space:]]*(replace[[:space:]]+)?//')
cat >go.mod <<MOD
module zincsearch-build

go 1.21

require github.com/zincsearch/zincsearch $version

replace github.com/zincsearch/zincsearch => ./zincsrc
MOD
while IFS= read -r r; do [ -n "$r" ] && echo "replace $r" >>go.mod; done <<<"$replaces"
(cd zincsrc && go mod edit -go=1.21 && go mod edit -droprequire=toolchain 2>/dev/null || true)
cat >tools.go <<'GO'
//go:build tools

package tools

import _ "github.com/zincsearch/zincsearch/cmd/zincsearch"
GO
export GOTOOLCHAIN=go1.21.13
go mod tidy >/dev/null 2>&1 || true
nice -n 10 go build -o zincsearch github.com/zincsearch/zincsearch/cmd/zincsearch
install -D -m 0755 zincsearch "$bin"
echo "zincsearch $version installed at $bin"
