-- Profiling driver for the mtmsg side of S2, S3, S4 (see bench/profile.sh); prints
-- the rate (S2, S4) or the round trip (S3). lua5.4 bench/prof/mt.lua S2|S3|S4 <n>
local mtmsg = require "mtmsg"
local thread = require "testthread"
local now = require("cbase").now
local which, n = arg[1], tonumber(arg[2])
local function producer(bid, n, tag)
    local mtmsg = require "mtmsg"
    local b = mtmsg.buffer(bid)
    for i = 1, n do b:addmsg(tag, i, true) end
end
local function ponger(pingid, pongid, n)
    local mtmsg = require "mtmsg"
    local ping, pong = mtmsg.buffer(pingid), mtmsg.buffer(pongid)
    for _ = 1, n do
        local s, j, t = ping:nextmsg()
        pong:addmsg(s, j, t)
    end
end
local t0 = now()
if which == "S2" then
    local b = mtmsg.newbuffer()
    local th = thread.start(producer, b:id(), n, "hello")
    for i = 1, n do
        local _, j = b:nextmsg()
        if j ~= i then error("S2: wrong message") end
    end
    assert(th:join())
elseif which == "S3" then
    local ping, pong = mtmsg.newbuffer(), mtmsg.newbuffer()
    local th = thread.start(ponger, ping:id(), pong:id(), n)
    for i = 1, n do
        ping:addmsg("hello", i, true)
        local _, j = pong:nextmsg()
        if j ~= i then error("S3: wrong message") end
    end
    assert(th:join())
elseif which == "S4" then
    local l = mtmsg.newlistener()
    local ths, bufs = {}, {}        -- bufs: the handles keep the buffers alive
    for p = 1, 4 do
        bufs[p] = l:newbuffer()
        ths[p] = thread.start(producer, bufs[p]:id(), n // 4, "hell" .. p)
    end
    for _ = 1, n do l:nextmsg() end
    for p = 1, 4 do assert(ths[p]:join()) end
else
    error("usage: mt.lua S2|S3|S4 n")
end
local dt = now() - t0
if which == "S3" then print(("%s %.2f us/roundtrip"):format(which, dt / n * 1e6))
else print(("%s %.2f M msg/s"):format(which, n / dt / 1e6)) end
