-- The URL given to wrk, paced: each connection waits $DELAY_MS before every
-- request (rate ~ connections * 1000 / (DELAY_MS + latency)).
local delay_ms = tonumber(os.getenv("DELAY_MS") or "0")

function delay()
  return delay_ms
end
