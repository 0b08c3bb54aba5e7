-- wrk script: POST the image named by $WRK_BODY as image/jpeg, the same request
-- `batchserve bench` sends, so the two generators can be compared on one step.
local f = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE") or "image/jpeg"
