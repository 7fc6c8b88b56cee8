#!/usr/bin/env bash
# make demo: until the orchestration issue lands, start one node in a
# temporary home and print its identity.
set -euo pipefail
cd "$(dirname "$0")/.."
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
export DMS_PASSPHRASE=${DMS_PASSPHRASE:-demo}
./bin/dms --home "$home" init
./bin/dms --home "$home" key did node
