-- A cqueues coroutine that blocks on a buffer: buffers and listeners have the pollable
-- methods (pollfd, events, timeout), so cqueues.poll takes them directly.
-- Needs lua-cqueues. Threads come from the project's test helper `testthread`.
local cqueues = require "cqueues"
local mtmsg = require "mtmsg"
local thread = require "testthread"

local inbox = mtmsg.newbuffer()
local cq = cqueues.new()
cq:wrap(function()
    local got = 0
    while got < 3 do
        cqueues.poll(inbox)                  -- this coroutine sleeps, others run
        for text, n in function() return inbox:nextmsg(0) end do
            got = got + 1
            print("cqueues got", text, n)
        end
    end
end)

local worker = thread.start(function(id)
    local box = require("mtmsg").buffer(id)
    for n = 1, 3 do box:addmsg("tick", n) end
end, inbox:id())
assert(cq:loop())
assert(worker:join())
