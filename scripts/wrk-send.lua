-- wrk script for scripts/bench.sh: POST /v1/messages to a distinct valid US number per request
-- (so the per-recipient hourly limit never applies), counting the answers by status.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
  table.insert(threads, thread)
end

function init(args)
  accepted = 0
  other = 0
  n = 0
end

function request()
  n = n + 1
  -- +1 628 NXX XXXX with the exchange in 200-999 (valid NANP), distinct per thread and request.
  local local_part = 2000000 + (id * 1000000 + n) % 8000000
  local to = string.format("+1628%07d", local_part)
  local body = string.format('{"to":"%s","body":"bench %d"}', to, n)
  return wrk.format("POST", "/v1/messages", {
    ["Authorization"] = "Bearer bench-key",
    ["Content-Type"] = "application/json",
  }, body)
end

function response(status, headers, body)
  if status == 202 then accepted = accepted + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local a, o = 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("accepted")
    o = o + t:get("other")
  end
  local secs = summary.duration / 1e6
  io.write(string.format("wrk: %d accepted (202), %d other, in %.1f s\n", a, o, secs))
  io.write(string.format("BENCH accepted_messages_per_second %.0f\n", a / secs))
  io.write(string.format("BENCH p99_latency_ms %.1f\n", latency:percentile(99) / 1000))
end
