-- wrk script: POST one-step runs; stops each thread after its share of `total` requests
-- (set with the environment variable RUNS; 0 or unset means run for the duration).
wrk.method = "POST"
wrk.body = '{"params": {}}'
wrk.headers["Content-Type"] = "application/json"

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
