-- Plain poll(2) through lua-posix on a listener's descriptor: readable while any of
-- its buffers has a message. Needs lua-posix (Debian: Lua 5.1, 5.2, 5.3, LuaJIT).
-- Threads come from the project's test helper `testthread`.
local poll = require "posix.poll"
local mtmsg = require "mtmsg"
local thread = require "testthread"

local listener = mtmsg.newlistener()
local a, b = listener:newbuffer(), listener:newbuffer()
local fd = listener:getfd()

local worker = thread.start(function(ida, idb)
    local mtmsg = require "mtmsg"
    mtmsg.buffer(ida):addmsg("from a")
    mtmsg.buffer(idb):addmsg("from b")
end, a:id(), b:id())

local got = 0
while got < 2 do
    local fds = {[fd] = {events = {IN = true}}}
    assert(poll.poll(fds, 10000) == 1, "timed out")
    for text in function() return listener:nextmsg(0) end do
        got = got + 1
        print("poll got", text)
    end
end
assert(worker:join())
