-- Shared by the wrk scripts of benches/http/run.sh: one machine-readable line per run,
-- `WRK requests req_per_s p50_ms p99_ms non_2xx socket_errors`.
function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format("WRK %d %.1f %.2f %.2f %d %d\n", summary.requests,
    summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
