-- wrk script: POST a pool of pre-signed webhook bodies, each request a different one.
--
--   wrk -t1 -c64 -d10s --latency -s bench/wrk_pool.lua URL -- POOL_FILE [START] [THREADS]
--
-- POOL_FILE has one "<hex signature>\t<json body>" line per request body.
-- START is the 0-based pool index the first thread begins at (so a measured
-- run can continue where its warm-up stopped); thread k begins at
-- START + k * (pool size / THREADS).  All connections of one wrk thread share
-- that thread's cursor, so no two requests repeat a body until the pool wraps.
-- done() prints one machine-readable "BENCH key=value ..." line.

local threads = {}
local thread_count = 0

function setup(thread)
   thread:set("id", thread_count)
   thread_count = thread_count + 1
   table.insert(threads, thread)
end

function init(args)
   local file = args[1]
   if not file then
      error("wrk_pool.lua: pass the pool file after --")
   end
   local start = tonumber(args[2] or "0")
   local nthreads = tonumber(args[3] or "1")
   sigs, bodies = {}, {}
   for line in io.lines(file) do
      local tab = line:find("\t", 1, true)
      if tab then
         sigs[#sigs + 1] = line:sub(1, tab - 1)
         bodies[#bodies + 1] = line:sub(tab + 1)
      end
   end
   n = #bodies
   if n == 0 then
      error("wrk_pool.lua: no entries in " .. file)
   end
   local stride = math.floor(n / nthreads)
   pos = (start + (id or 0) * stride) % n + 1
   sent = 0
   wraps = 0
end

function request()
   local i = pos
   pos = pos + 1
   if pos > n then
      pos = 1
      wraps = wraps + 1
   end
   sent = sent + 1
   return wrk.format("POST", nil, {
      ["Content-Type"] = "application/json",
      ["X-Webhook-Signature"] = sigs[i],
   }, bodies[i])
end

function done(summary, latency, requests)
   local total_sent, total_wraps = 0, 0
   for _, thread in ipairs(threads) do
      total_sent = total_sent + (thread:get("sent") or 0)
      total_wraps = total_wraps + (thread:get("wraps") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d bytes=%d non2xx=%d connect=%d read=%d write=%d timeout=%d "
         .. "p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f sent=%d wraps=%d\n",
      summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
      total_sent, total_wraps
   ))
end
