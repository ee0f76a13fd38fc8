-- Profiling driver for S1 (see bench/profile.sh): n pairs of addmsg/nextmsg, or of the
-- floor calls. lua5.4 bench/prof/s1.lua <n> mtmsg|floor
local mtmsg = require "mtmsg"
local floor = require "floor"
local n = tonumber(arg[1]) or 100000
if (arg[2] or "mtmsg") == "mtmsg" then
    local b = mtmsg.newbuffer()
    for i = 1, n do
        b:addmsg("hello", i, true)
        local s, j, t = b:nextmsg()
        if j ~= i or s ~= "hello" or t ~= true then error("S1: wrong message") end
    end
else
    local f = floor.f
    for i = 1, n do
        f("hello", i, true)
        local s, j, t = f()
        if j ~= i or s ~= "hello" or t ~= true then error("S1 floor: wrong message") end
    end
end
