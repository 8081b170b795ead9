-- POST /api/v1/conversions as the bench partner (TOKEN). With KEYED=1 every request carries an
-- Idempotency-Key never used before (run nonce, thread, counter), so each one is a new
-- conversion that also claims a key.
package.path = package.path .. ";" .. os.getenv("BENCH_DIR") .. "/?.lua"
require "report"
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"from":"EUR","to":"USD","amount":"100.00"}'
local keyed = os.getenv("KEYED") == "1"
local nonce = os.getenv("NONCE") or "0"

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local n = 0
function request()
  if not keyed then
    return wrk.request()
  end
  n = n + 1
  wrk.headers["Idempotency-Key"] = nonce .. "-" .. tid .. "-" .. n
  return wrk.format()
end
