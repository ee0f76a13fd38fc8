-- make bench-tables: tables as message elements against hand serialization.
-- A round trip is addmsg + nextmsg through one buffer in one thread, of
--   record: {id=1, name="x", tags={"a","b"}, pos={x=1.5,y=2}}
--   array:  a 10,000-entry array of integers
-- sent as a table (mtmsg), or as the string that lua-cjson or lua-messagepack encodes
-- (and decoded after nextmsg). Each figure is the median of BENCH_RUNS runs (default 5),
-- interleaved; the target is mtmsg at least 2x faster than the faster of the two.
-- Run with Lua 5.4: LUA_CPATH="build/5.4/?.so;;" lua5.4 bench/tables.lua
-- (lua-messagepack ships no 5.4 directory in Debian; its 5.3 file is pure Lua and is
-- used under 5.4.)
local mtmsg = require "mtmsg"
package.path = package.path .. ";/usr/share/lua/5.3/?.lua"
local okc, cjson = pcall(require, "cjson")
local okm, mp = pcall(require, "MessagePack")
if not okc then error("bench-tables needs lua-cjson (apt-get install lua-cjson)") end
if not okm then error("bench-tables needs lua-messagepack (apt-get install lua-messagepack)") end

local RUNS = tonumber(os.getenv("BENCH_RUNS")) or 5
local SCALE = tonumber(os.getenv("BENCH_SCALE")) or 1

local record = { id = 1, name = "x", tags = { "a", "b" }, pos = { x = 1.5, y = 2 } }
local array = {}
for i = 1, 10000 do array[i] = i end

local function check_record(r)
    assert(r.id == 1 and r.name == "x" and r.tags[2] == "b" and r.pos.x == 1.5 and r.pos.y == 2)
end
local function check_array(r)
    assert(#r == 10000 and r[1] == 1 and r[10000] == 10000)
end

local b = mtmsg.newbuffer()
local codecs = {
    { "mtmsg", function(t) b:addmsg(t) return b:nextmsg() end },
    { "cjson", function(t) b:addmsg(cjson.encode(t)) return cjson.decode(b:nextmsg()) end },
    { "messagepack", function(t) b:addmsg(mp.pack(t)) return mp.unpack(b:nextmsg()) end },
}
local cases = {
    { "record", record, check_record, math.max(1, math.floor(100000 * SCALE)) },
    { "array10k", array, check_array, math.max(1, math.floor(300 * SCALE)) },
}

local function measure(codec, case)
    local f, t, n = codec[2], case[2], case[4]
    case[3](f(t))                               -- checked once per run
    collectgarbage("collect")
    local t0 = mtmsg.time()
    for _ = 1, n do f(t) end
    return (mtmsg.time() - t0) / n * 1e9           -- ns per round trip
end

local res = {}
for _ = 1, RUNS do
    for _, case in ipairs(cases) do
        for _, codec in ipairs(codecs) do
            local key = case[1] .. "/" .. codec[1]
            res[key] = res[key] or {}
            table.insert(res[key], measure(codec, case))
        end
    end
end
local function median(l)
    table.sort(l)
    return l[math.floor((#l + 1) / 2)]
end

print(("bench-tables: %s, runs %d, scale %g"):format(_VERSION, RUNS, SCALE))
print("| data | mtmsg table | cjson string | messagepack string | faster baseline / mtmsg | target |")
print("|---|---:|---:|---:|---:|---|")
local allok = true
for _, case in ipairs(cases) do
    local m = median(res[case[1] .. "/mtmsg"])
    local c = median(res[case[1] .. "/cjson"])
    local p = median(res[case[1] .. "/messagepack"])
    local ratio = math.min(c, p) / m
    local ok = ratio >= 2
    allok = allok and ok
    local function fmt(ns) return ns >= 10000 and ("%.1f µs"):format(ns / 1000) or ("%.0f ns"):format(ns) end
    print(("| %s | %s | %s | %s | %.2f | ≥ 2: %s |"):format(case[1], fmt(m), fmt(c), fmt(p), ratio,
          ok and "met" or "MISSED"))
end
if not allok then os.exit(1) end
