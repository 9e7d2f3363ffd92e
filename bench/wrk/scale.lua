-- wrk script for bench/scale.bench.ts: PUTs or default reads of 1,000 keys bench/k<i % 1000>, on
-- Konsul's KV API or etcd's v3 JSON gateway, with every response's status counted.
--   SCALE_TARGET=konsul|etcd  SCALE_OP=put|get  SCALE_KEYS=1000  SCALE_VALUE_SIZE=100
--   wrk -t1 -c16 -d40s --latency -s bench/wrk/scale.lua http://127.0.0.1:8500
-- Konsul: PUT /v1/kv/bench/k<j> (raw body) / GET /v1/kv/bench/k<j> (default consistency).
-- etcd:   POST /v3/kv/put {key, value} / POST /v3/kv/range {key} (linearizable).
-- At the end prints one line: SCALEJSON {...}: wrk's counters and latency (µs), the responses per
-- HTTP status ("codes") and the first non-2xx answer ("sample").
local target = os.getenv("SCALE_TARGET") or "konsul"
local op = os.getenv("SCALE_OP") or "put"
local nkeys = tonumber(os.getenv("SCALE_KEYS") or "1000")
local vsize = tonumber(os.getenv("SCALE_VALUE_SIZE") or "100")

local function b64(data)
  local b = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  return ((data:gsub('.', function(x)
    local r, bb = '', x:byte()
    for i = 8, 1, -1 do r = r .. (bb % 2 ^ i - bb % 2 ^ (i - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if (#x < 6) then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
    return b:sub(c + 1, c + 1)
  end) .. ({ '', '==', '=' })[#data % 3 + 1])
end

-- Main state: the threads, to sum their counters in done().
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

-- Thread state.
local requests_ = {}
local i = 0
codes = {}
sample = ""

function init(args)
  local value = string.rep("x", vsize)
  local json = { ["Content-Type"] = "application/json" }
  for j = 0, nkeys - 1 do
    local key = "bench/k" .. j
    if target == "etcd" then
      if op == "put" then
        requests_[j] = wrk.format("POST", "/v3/kv/put", json, '{"key":"' .. b64(key) .. '","value":"' .. b64(value) .. '"}')
      else
        requests_[j] = wrk.format("POST", "/v3/kv/range", json, '{"key":"' .. b64(key) .. '"}')
      end
    else
      if op == "put" then
        requests_[j] = wrk.format("PUT", "/v1/kv/" .. key, nil, value)
      else
        requests_[j] = wrk.format("GET", "/v1/kv/" .. key)
      end
    end
  end
end

function request()
  i = i + 1
  return requests_[i % nkeys]
end

function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
  if (status < 200 or status > 299) and sample == "" then
    sample = status .. " " .. string.sub(body or "", 1, 160)
  end
end

function done(summary, latency, requests)
  local all = {}
  local first = ""
  for _, t in ipairs(threads) do
    local c = t:get("codes")
    if c then
      for k, v in pairs(c) do all[k] = (all[k] or 0) + v end
    end
    local s = t:get("sample")
    if first == "" and s then first = s end
  end
  local parts = {}
  for k, v in pairs(all) do table.insert(parts, string.format('"%d":%d', k, v)) end
  first = first:gsub('[%c"\\]', ' ')
  local e = summary.errors
  io.write(string.format(
    'SCALEJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,"max_us":%.0f,"mean_us":%.1f,"codes":{%s},"sample":"%s"}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    table.concat(parts, ","), first))
end
