-- Conditional GET of the JWKS with the current ETag (env BENCH_ETAG): every answer is a 304.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
wrk.method = "GET"
wrk.headers["If-None-Match"] = os.getenv("BENCH_ETAG") or '"none"'
