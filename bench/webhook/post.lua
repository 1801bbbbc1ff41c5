-- wrk script for bench/webhook/run.py: POSTs body.json to the hook; prints one summary line.
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
local file = assert(io.open(here .. "body.json", "r"))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = file:read("*a"):gsub("%s+$", "")
file:close()

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d rps=%.1f p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d\n",
    summary.requests, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout, e.status))
end
