-- wrk replays the request mix `scenarios/examples/request_mix.rs` printed (MIX, one request a
-- line: `json PATH` asks for PEP 691 JSON, `get PATH` plain), in order, round and round.
--   MIX=mix.txt wrk -t1 -c32 -d30s -s scenarios/examples/wrk-mix.lua http://127.0.0.1:PORT
local requests = {}
local json = { ["Accept"] = "application/vnd.pypi.simple.v1+json", ["Accept-Encoding"] = "gzip" }
local plain = { ["Accept-Encoding"] = "gzip" }
for line in io.lines(os.getenv("MIX") or "mix.txt") do
  local kind, path = line:match("^(%a+) (.+)$")
  if kind then
    requests[#requests + 1] = wrk.format("GET", path, kind == "json" and json or plain)
  end
end
local next_request = 0
request = function()
  next_request = next_request % #requests + 1
  return requests[next_request]
end
