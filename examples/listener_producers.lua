-- One listener, several producers: each producer thread writes into its own
-- buffer of the listener; the main thread reads everything from the listener.
local mtmsg = require "mtmsg"
local thread = require "testthread"

local PRODUCERS, COUNT = 4, 5
local listener = mtmsg.newlistener()
local buffers, threads = {}, {}

for p = 1, PRODUCERS do
    buffers[p] = listener:newbuffer("producer" .. p)
    threads[p] = thread.start(function(name, count)
        local mtmsg = require "mtmsg"
        local out = mtmsg.buffer(name)              -- found by its unique name
        for i = 1, count do out:addmsg(name, i) end
        out:addmsg(name, "done")
    end, "producer" .. p, COUNT)
end

local finished, received = 0, 0
while finished < PRODUCERS do
    local from, what = listener:nextmsg()
    if what == "done" then finished = finished + 1
    else received = received + 1; print(from, what) end
end
for p = 1, PRODUCERS do assert(threads[p]:join()) end
print(("%d messages from %d producers"):format(received, PRODUCERS))
assert(received == PRODUCERS * COUNT)
