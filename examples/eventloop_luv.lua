-- A luv (libuv) loop that sleeps until a worker thread's message arrives: the buffer's
-- wake-up descriptor goes into uv.new_poll, next to the loop's timers and sockets.
-- Needs lua-luv. Threads come from the project's test helper `testthread`.
local uv = require "luv"
local mtmsg = require "mtmsg"
local thread = require "testthread"

local inbox = mtmsg.newbuffer()
local poll = uv.new_poll(inbox:getfd())      -- readable while inbox has a message
local got = 0
poll:start("r", function()
    for text, n in function() return inbox:nextmsg(0) end do   -- take all there is
        got = got + 1
        print("luv got", text, n)
    end
    if got == 3 then poll:close() end        -- nothing left to wait for: run() returns
end)

local worker = thread.start(function(id)
    local box = require("mtmsg").buffer(id)
    for n = 1, 3 do box:addmsg("tick", n) end
end, inbox:id())
uv.run()
assert(worker:join())
