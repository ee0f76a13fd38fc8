-- A bounded pipeline (extensions: setlimit, waitaddmsg, finish, messages): a producer
-- thread, a transformer thread and the main thread as consumer, joined by two buffers
-- of at most 64 messages each. A fast producer blocks in waitaddmsg instead of growing
-- the queue; finish() ends each stage after its last message, and the messages()
-- loops end at the end of the stream.
local mtmsg = require "mtmsg"
local thread = require "testthread"

local N, LIMIT = 20000, 64
local raw, squared = mtmsg.newbuffer(), mtmsg.newbuffer()
raw:setlimit(LIMIT)
squared:setlimit(LIMIT)

local producer = thread.start(function(outId, n)
    local mtmsg = require "mtmsg"
    local out = mtmsg.buffer(outId)
    for i = 1, n do out:waitaddmsg(nil, i) end    -- waits while 64 are queued
    out:finish()                                  -- end of stream after the last one
end, raw:id(), N)

local transformer = thread.start(function(inId, outId)
    local mtmsg = require "mtmsg"
    local inp, out = mtmsg.buffer(inId), mtmsg.buffer(outId)
    for _, v in inp:messages() do out:waitaddmsg(nil, v, v * v) end
    out:finish()
end, raw:id(), squared:id())

local count, sum = 0, 0
for i, v, sq in squared:messages(10) do
    assert(sq == v * v and v == i)                -- in order, nothing lost
    count, sum = i, sum + sq
end
assert(squared:nextmsg(0) == mtmsg.EOS, "the stream did not end")
assert(producer:join() and transformer:join())
print(("%d messages through 2 stages; sum of squares %.0f; at most %d and %d queued")
      :format(count, sum, raw:highwater(), squared:highwater()))
assert(count == N and raw:highwater() <= LIMIT and squared:highwater() <= LIMIT)
