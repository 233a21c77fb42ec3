-- POST /auth, keep-alive. Without credentials by default (the subject is `anonymous`);
-- with env BENCH_AUTH set, it is sent as the Authorization header (e.g. "Basic ...").
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
wrk.method = "POST"
wrk.headers["Content-Length"] = "0"
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
