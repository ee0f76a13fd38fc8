-- copas: a copas thread waits for messages with copas.receive, through a tiny
-- socket-like wrapper (getfd for copas' select, receive that says "timeout" when the
-- buffer is empty, close for copas.autoclose).
-- Needs lua-copas (Debian: Lua 5.1, 5.2, LuaJIT). Threads: the test helper `testthread`.
local copas = require "copas"
local mtmsg = require "mtmsg"
local thread = require "testthread"

local function receiver(box)
    return {
        getfd = function() return box:getfd() end,
        receive = function()
            local text, n = box:nextmsg(0)
            if text == nil then return nil, "timeout" end
            return text .. " " .. n
        end,
        close = function() end,
    }
end

local inbox = mtmsg.newbuffer()
local done = false
copas.addthread(function()
    local from = receiver(inbox)
    for _ = 1, 3 do print("copas got", (copas.receive(from))) end
    done = true
end)

local worker = thread.start(function(id)
    local box = require("mtmsg").buffer(id)
    for n = 1, 3 do box:addmsg("tick", n) end
end, inbox:id())
while not done do copas.step(10) end
assert(worker:join())
