-- POST a new patient per request, each with an email no run has used before.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local path = os.getenv("BENCH_PATH")
local token = os.getenv("BENCH_TOKEN")
local run = os.getenv("BENCH_RUN_TAG")
local counter = 0
local thread_tag = ""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if token ~= nil and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end

function init(args)
  thread_tag = tostring({}):sub(8)
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"name":"Bench Patient %d","email":"bench-%s-%s-%d@bench.example.com",' ..
    '"address":"1 Benchmark Way","dateOfBirth":"1980-01-01"}', counter, run, thread_tag, counter)
  return wrk.format(nil, path, nil, body)
end
