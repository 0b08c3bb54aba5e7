-- wrk script: POST one fixed body, the same request `batchserve bench` would send.
--
--   WRK_BODY=FILE        the body, sent as it is (a JPEG, a JSON body, a v2 binary tensor)
--   WRK_CONTENT_TYPE     its Content-Type (image/jpeg when unset)
--   WRK_HEADERS          more headers, "Name: value" lines separated by newlines
--                        (the v2 binary route's Inference-Header-Content-Length)
--
-- done() adds one "wrk-summary key=value ..." line after wrk's own report, with the
-- percentiles that `--latency` does not print (p95) and the error counts by kind, so
-- bench/wrk_runner.py need not rely on rounded text alone.
local f = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE") or "image/jpeg"
for line in string.gmatch(os.getenv("WRK_HEADERS") or "", "[^\n]+") do
  local name, value = string.match(line, "^%s*([^:]+):%s*(.-)%s*$")
  if name then
    wrk.headers[name] = value
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "wrk-summary requests=%d duration_us=%d bytes=%d"
      .. " p50_us=%d p90_us=%d p95_us=%d p99_us=%d max_us=%d mean_us=%.1f"
      .. " connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
