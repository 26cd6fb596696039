-- wrk script: cycles through the requests of a case, read from a file the benchmark writes,
-- and prints its figures as one JSON line.
--
-- Usage: wrk ... -s requests.lua URL -- FILE SALT
-- FILE: first line "header<TAB>name<TAB>value" lines, then "METHOD<TAB>PATH<TAB>BODY" lines
-- (BODY may be empty). "{n}" in PATH or BODY becomes a tag unique to the request within the
-- run ("{N}" the same in upper case; SALT keeps it unique across runs), so that created users
-- never collide.

local thread_count = 0

function setup(thread)
   thread_count = thread_count + 1
   thread:set("thread_number", thread_count)
end

local lines = {}
local cached = {}
local headers = {}
local position = 1
local counter = 0
local prefix = ""

function init(args)
   local file = assert(io.open(args[1], "r"))
   for line in file:lines() do
      local a, b, c = line:match("^([^\t]*)\t([^\t]*)\t?(.*)$")
      if a == "header" then
         headers[b] = c
      elseif a then
         lines[#lines + 1] = { a, b, c }
      end
   end
   file:close()
   prefix = "b" .. args[2] .. "t" .. (thread_number or 1) .. "n"
   -- Threads start at different places, so that they do not ask for the same ids together.
   position = (((thread_number or 1) - 1) * 7919) % #lines + 1
end

function request()
   local entry = lines[position]
   local index = position
   position = position % #lines + 1
   if cached[index] then
      return cached[index]
   end
   local method, path, body = entry[1], entry[2], entry[3]
   if body == "" then
      body = nil
   end
   if (body and body:find("{n}", 1, true)) or path:find("{n}", 1, true) then
      counter = counter + 1
      local tag = prefix .. counter
      path = path:gsub("{n}", tag)
      if body then
         body = body:gsub("{n}", tag):gsub("{N}", tag:upper())
      end
      return wrk.format(method, path, headers, body)
   end
   cached[index] = wrk.format(method, path, headers, body)
   return cached[index]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,'
         .. '"p99_us":%d,"max_us":%d,"mean_us":%.1f,"connect":%d,"read":%d,"write":%d,'
         .. '"status":%d,"timeout":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean,
      e.connect, e.read, e.write, e.status, e.timeout))
end
