-- Hello through a thread: the main thread hands a buffer to a worker by id,
-- the worker answers on the same buffer. Threads come from the project's small
-- test helper `testthread`; llthreads2 or Lanes are used the same way.
local mtmsg = require "mtmsg"
local thread = require "testthread"

local inbox = mtmsg.newbuffer()
local outbox = mtmsg.newbuffer()

local worker = thread.start(function(inId, outId)
    local mtmsg = require "mtmsg"
    local inbox, outbox = mtmsg.buffer(inId), mtmsg.buffer(outId)
    local greeting, name = inbox:nextmsg()          -- waits for the message
    outbox:addmsg(greeting .. ", " .. name .. "!")
end, inbox:id(), outbox:id())

inbox:addmsg("Hello", "world")
print(outbox:nextmsg())                              --> Hello, world!
assert(worker:join())
