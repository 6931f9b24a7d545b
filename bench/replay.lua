-- wrk script: replay pre-signed TOP calls (one per line: "<path?query>\t<urlencoded body>"),
-- each once in order, and count the answers by kind.
--
--   wrk ... -s replay.lua URL -- CALLS_FILE [PAUSE_MS]
--
-- Printed after the run: FAILURES (answers that are not a sendmobile success, flow
-- control included, as before), SUCCESSES, LIMITED (TOP code 7, flow control), SENT (calls
-- handed to connections), CALLS (distinct calls in the file: SENT above it means some were
-- replayed), and the latency percentiles P50_US, P90_US, P99_US and MAX_US.
-- PAUSE_MS paces the load: each connection waits a random 0..2*PAUSE_MS ms (mean PAUSE_MS)
-- after an answer before its next call, so c connections offer about
-- c * 1000 / (PAUSE_MS + latency) calls per second.
local calls = {}
local next_call = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  failures = 0
  successes = 0
  limited = 0
  sent = 0
  for line in io.lines(args[1]) do
    local path, body = line:match("([^\t]*)\t(.*)")
    calls[#calls + 1] = wrk.format("POST", path,
      {["Content-Type"] = "application/x-www-form-urlencoded;charset=UTF-8"}, body)
  end
  ncalls = #calls
  local pause = tonumber(args[2] or "")
  if pause and pause > 0 then
    math.randomseed(os.time())
    local top = math.floor(2 * pause + 0.5)
    -- wrk looks for a global delay() after init(): defining it here turns pacing on.
    delay = function()
      return math.random(0, top)
    end
  end
end

function request()
  next_call = next_call % #calls + 1
  sent = sent + 1
  return calls[next_call]
end

function response(status, headers, body)
  if status == 200 and body:find('"success":true', 1, true) then
    successes = successes + 1
    return
  end
  failures = failures + 1
  if status == 200 and body:find('"code":7,', 1, true) then
    limited = limited + 1
  end
end

function done(summary, latency, requests)
  local totals = {failures = 0, successes = 0, limited = 0, sent = 0, ncalls = 0}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + (thread:get(name) or 0)
    end
  end
  io.write(string.format("FAILURES %d\n", totals.failures))
  io.write(string.format("SUCCESSES %d\n", totals.successes))
  io.write(string.format("LIMITED %d\n", totals.limited))
  io.write(string.format("SENT %d\n", totals.sent))
  io.write(string.format("CALLS %d\n", totals.ncalls))
  for _, p in ipairs({50, 90, 99}) do
    io.write(string.format("P%d_US %d\n", p, latency:percentile(p)))
  end
  io.write(string.format("MAX_US %d\n", latency.max))
end
