-- GET /api/users/{id}/recommendations?k=10 for users drawn uniformly from
-- 1..$USERS (each wrk thread its own seed), paced when $DELAY_MS is set:
-- each connection waits that long before every request, so the rate is
-- about connections * 1000 / (DELAY_MS + latency).
local users = tonumber(os.getenv("USERS") or "1000")
local delay_ms = tonumber(os.getenv("DELAY_MS") or "0")
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  math.randomseed(seed or 1)
end

function request()
  return wrk.format("GET", "/api/users/" .. math.random(1, users) .. "/recommendations?k=10")
end

function delay()
  return delay_ms
end
