-- LuaSocket's socket.select waits on sockets and on a buffer at once: buffers and
-- listeners have a getfd method, which is what select asks its objects for.
-- Needs lua-socket. Threads come from the project's test helper `testthread`.
local socket = require "socket"
local mtmsg = require "mtmsg"
local thread = require "testthread"

local server = assert(socket.bind("127.0.0.1", 0))   -- a socket nobody connects to
local inbox = mtmsg.newbuffer()
inbox:getfd()               -- made now: a closed buffer gives out no new handle
local worker = thread.start(function(id)
    local box = require("mtmsg").buffer(id)
    for n = 1, 3 do box:addmsg("tick", n) end
end, inbox:id())

local got = 0
while got < 3 do
    local ready = socket.select({server, inbox}, nil, 10)
    if ready[server] then server:accept():close() end
    if ready[inbox] then
        local text, n = inbox:nextmsg(0)     -- (after inbox:close() this would raise)
        got = got + 1
        print("select got", text, n)
    end
end
server:close()
assert(worker:join())
