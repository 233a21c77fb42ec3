-- GET of the URL given to wrk (the JWKS), keep-alive.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
wrk.method = "GET"
