-- GET {prefix}/{id} for ids picked at random from the file in $BENCH_IDS (one UUID per line).
-- $BENCH_PREFIX is the path before the id; $BENCH_TOKEN, when set, is sent as a Bearer token.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local ids = {}
for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
local prefix = os.getenv("BENCH_PREFIX")
local token = os.getenv("BENCH_TOKEN")
if token ~= nil and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function request()
  return wrk.format("GET", prefix .. "/" .. ids[math.random(#ids)])
end
