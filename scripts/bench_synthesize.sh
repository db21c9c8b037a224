#!/usr/bin/env bash
# The synthesis client's overhead: `mathlake synthesize --method response_diversity` over
# all of GSM8K train against a stand-in endpoint that answers every request after a fixed
# latency (benches/endpoint.rs). Without overhead the client would reach
# concurrency / latency requests per second; the run's own figure counts everything from
# reading the problems to the committed table, the response cache's journal included.
#
#   scripts/bench_synthesize.sh                      # concurrency 256, 200 ms, 4 rollouts
#   scripts/bench_synthesize.sh CONCURRENCY LATENCY_MS ROLLOUTS
set -euo pipefail
cd "$(dirname "$0")/.."
concurrency=${1:-256}
latency_ms=${2:-200}
rollouts=${3:-4}
cargo build --release --quiet
# The endpoint's own executable, so that killing it at the end kills the server itself.
server=$(cargo bench --no-run --quiet --bench endpoint --message-format json 2>/dev/null |
  python3 -c 'import json, sys
print(next(m["executable"] for m in map(json.loads, sys.stdin) if m.get("target", {}).get("name") == "endpoint"
           and m.get("executable")))')
bin=target/release/mathlake
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$server" "$port" "$latency_ms" 2>/dev/null &
endpoint=$!
trap 'kill "$endpoint" 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" ingest ../shared/data/problems/gsm8k_train.jsonl --preset gsm8k --lake "$work/lake" --quiet >/dev/null
for _ in $(seq 1 150); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$endpoint" 2>/dev/null || { echo "the stand-in endpoint did not start" >&2; exit 1; }
  sleep 0.2
done

/usr/bin/time -v "$bin" synthesize --method response_diversity --lake "$work/lake" \
  --endpoint "http://127.0.0.1:$port/v1" --model bench --concurrency "$concurrency" --rollouts "$rollouts" \
  --quiet --json >"$work/report.json" 2>"$work/time.txt"
python3 - "$work/report.json" "$work/time.txt" "$concurrency" "$latency_ms" <<'PY'
import json, re, sys
report = json.load(open(sys.argv[1]))
report = report.get("synthesize", report)
timing = open(sys.argv[2]).read()
concurrency, latency = int(sys.argv[3]), int(sys.argv[4]) / 1000
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing).group(1)) / 1024
cpu = sum(float(re.search(rf"{k} time \(seconds\): ([\d.]+)", timing).group(1)) for k in ("User", "System"))
rate = report["requests"] / report["seconds"]
print(f"{report['problems']} problems x {report['rollouts']} rollouts: {report['requests']} requests "
      f"({report['retries']} retries, {report['failed']} failed) in {report['seconds']:.1f} s")
ideal = f" of an ideal {concurrency / latency:.0f} (concurrency {concurrency} / {latency * 1000:.0f} ms): " \
    f"{100 * rate * latency / concurrency:.1f}%" if latency > 0 else f" at concurrency {concurrency}, no latency"
print(f"requests/s {rate:.0f}{ideal}; CPU {cpu:.1f} s, peak RSS {rss:.0f} MB")
PY
