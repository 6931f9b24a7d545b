-- wrk script: replay pre-generated Kannel sendsms calls (one "<path?query>" a line), each
-- once in order, and count answers that are not Kannel's "0: Accepted for delivery".
local calls = {}
local next_call = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  failures = 0
  for path in io.lines(args[1]) do
    calls[#calls + 1] = wrk.format("GET", path)
  end
end

function request()
  next_call = next_call % #calls + 1
  return calls[next_call]
end

function response(status, headers, body)
  if status ~= 202 or not body:find("0: Accepted", 1, true) then
    failures = failures + 1
  end
end

function done(summary, latency, requests)
  local failed = 0
  for _, thread in ipairs(threads) do
    failed = failed + thread:get("failures")
  end
  io.write(string.format("FAILURES %d\n", failed))
  for _, p in ipairs({50, 90, 99}) do
    io.write(string.format("P%d_US %d\n", p, latency:percentile(p)))
  end
  io.write(string.format("MAX_US %d\n", latency.max))
end
