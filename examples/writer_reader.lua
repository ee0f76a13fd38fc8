-- Writer and reader: build a message piece by piece, send it in one step, and
-- take it apart piece by piece on the other side.
local mtmsg = require "mtmsg"
local thread = require "testthread"

local buffer = mtmsg.newbuffer()
local consumer = thread.start(function(id)
    local mtmsg = require "mtmsg"
    local buffer = mtmsg.buffer(id)
    local reader = mtmsg.newreader()
    local lines = {}
    while reader:nextmsg(buffer) do                  -- one whole message per call
        local kind = reader:next()
        if kind == "stop" then break end
        local count = reader:next()
        local items = { reader:next(count) }         -- the next `count` elements
        lines[#lines + 1] = kind .. ": " .. table.concat(items, " ")
    end
    return table.concat(lines, "\n")
end, buffer:id())

local writer = mtmsg.newwriter()
for n = 1, 3 do
    writer:add("squares", n)
    for i = 1, n do writer:add(i * i) end
    writer:addmsg(buffer)                            -- atomic; the writer is empty again
end
writer:add("stop")
writer:addmsg(buffer)

local ok, text = consumer:join()
assert(ok, text)
print(text)
