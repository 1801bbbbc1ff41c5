-- wrk script for bench/webhook/run.py: POSTs body.json to the hook; each thread stops after
-- its share of RUNS requests (0 or unset: runs for the duration); prints one summary line.
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
local file = assert(io.open(here .. "body.json", "r"))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = file:read("*a"):gsub("%s+$", "")
file:close()

local total = tonumber(os.getenv("RUNS") or "0")
local threads = tonumber(os.getenv("THREADS") or "1")
local sent = 0

function request()
  sent = sent + 1
  if total > 0 and sent > total / threads then
    wrk.thread:stop()
  end
  return wrk.format()
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d rps=%.1f p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d\n",
    summary.requests, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout, e.status))
end
