-- Flow-control benchmark (make bench-flow, bench/flow.sh): a pipeline of 3 threads,
-- producer -> transformer -> consumer (this thread), joined by two buffers, either
-- bounded (setlimit(64), waitaddmsg) or unbounded (addmsg). The consumer does the most
-- work per message, so an unbounded pipeline queues up in front of it while a bounded
-- one holds the producer back. Usage: lua5.4 bench/flow.lua bounded|unbounded N
-- Prints: mode N seconds msgs_per_s peak_rss_kib max_queued (both buffers' high-water).
local mtmsg = require "mtmsg"
local thread = require "testthread"

local mode, N = arg[1] or "bounded", tonumber(arg[2] or 200000)
local LIMIT = 64
local bounded = mode == "bounded"
local a, b = mtmsg.newbuffer(), mtmsg.newbuffer()
if bounded then a:setlimit(LIMIT); b:setlimit(LIMIT) end

local function rss_peak_kib()
    local f = io.open("/proc/self/status")
    if not f then return -1 end
    local s = f:read("*a")
    f:close()
    return tonumber(s:match("VmHWM:%s*(%d+)")) or -1
end

local t0 = mtmsg.time()
local producer = thread.start(function(outId, n, bounded)
    local mtmsg = require "mtmsg"
    local out = mtmsg.buffer(outId)
    local pad = ("p"):rep(100)
    for i = 1, n do
        if bounded then out:waitaddmsg(nil, i, pad) else out:addmsg(i, pad) end
    end
    out:finish()
end, a:id(), N, bounded)
local transformer = thread.start(function(inId, outId, bounded)
    local mtmsg = require "mtmsg"
    local inp, out = mtmsg.buffer(inId), mtmsg.buffer(outId)
    for _, i, pad in inp:messages() do
        if bounded then out:waitaddmsg(nil, i, #pad) else out:addmsg(i, #pad) end
    end
    out:finish()
end, a:id(), b:id(), bounded)

local count, acc = 0, 0
for k, i, len in b:messages() do
    assert(i == k and len == 100, "wrong message")
    for j = 1, 20 do acc = acc + (i * j) % 7 end   -- the slowest stage
    count = k
end
assert(count == N and b:nextmsg(0) == mtmsg.EOS)
assert(producer:join() and transformer:join())
local dt = mtmsg.time() - t0
local hw = math.max(a:highwater(), b:highwater())
print(("%s %d %.3f %.0f %d %d"):format(mode, N, dt, N / dt, rss_peak_kib(), hw))
