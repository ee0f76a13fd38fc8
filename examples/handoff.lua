-- Safe hand-off of a buffer by id: a buffer lives as long as some handle to it
-- lives, in any thread. Keep your handle until the receiver confirms that it has
-- made its own; then dropping yours is safe.
local mtmsg = require "mtmsg"
local thread = require "testthread"

local control = mtmsg.newbuffer()
local listener = mtmsg.newlistener()
local results = listener:newbuffer()

local worker = thread.start(function(controlId, resultsId)
    local mtmsg = require "mtmsg"
    local control = mtmsg.buffer(controlId)
    local results = mtmsg.buffer(resultsId)   -- the worker's own handle
    results:addmsg("started")                 -- confirmation
    assert(control:nextmsg() == "exit")
    results:addmsg("finished")
end, control:id(), results:id())

assert(listener:nextmsg() == "started")
results = nil                                 -- now safe: the worker holds one
collectgarbage()
control:addmsg("exit")
assert(listener:nextmsg() == "finished")
assert(worker:join())
collectgarbage()                              -- the worker's state is gone too
local ok, err = pcall(listener.nextmsg, listener)
print("after the last handle is gone:", err)
assert(err:match(mtmsg.error.no_buffers))
