-- wrk script for bench/run: POST an OpenAI chat completion, streaming or not.
-- Environment (set by bench/run):
--   BENCH_MODEL     the "model" field (default "bench")
--   BENCH_STREAM    "1" adds "stream": true
--   BENCH_AUTH_KEY  sent as "Authorization: Bearer <key>"
-- At the end it prints one machine-readable line, BENCH_RESULT key=value ..., with exact figures
-- (latencies in microseconds) so bench/run does not have to parse wrk's rounded text output.

local model = os.getenv("BENCH_MODEL") or "bench"
local stream = os.getenv("BENCH_STREAM") == "1"
local key = os.getenv("BENCH_AUTH_KEY") or ""

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.body = string.format(
  '{"model":"%s","messages":[{"role":"user","content":"hi"}]%s}',
  model,
  stream and ',"stream":true' or ""
)

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d p50_us=%.1f p90_us=%.1f p99_us=%.1f mean_us=%.1f"
      .. " max_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    latency.max, e.status, e.connect + e.read + e.write + e.timeout
  ))
end
