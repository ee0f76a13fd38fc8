-- A buffer as notifier of other buffers: every message added to `jobs` or `logs`
-- also drops an empty message into `wakeup`, so one thread can sleep on `wakeup`
-- and then poll the buffers it cares about (the pattern GUI and event loops use
-- with mtmsg's Notify C API).
local mtmsg = require "mtmsg"
local thread = require "testthread"

local wakeup = mtmsg.newbuffer()
local jobs, logs = mtmsg.newbuffer(), mtmsg.newbuffer()
jobs:notifier(wakeup)               -- type ">": notify after each add
logs:notifier(wakeup)

local producer = thread.start(function(jobsId, logsId)
    local mtmsg = require "mtmsg"
    local jobs, logs = mtmsg.buffer(jobsId), mtmsg.buffer(logsId)
    for i = 1, 3 do
        logs:addmsg("queued job " .. i)
        jobs:addmsg(i)
    end
    jobs:addmsg("stop")
end, jobs:id(), logs:id())

local running = true
while running do
    wakeup:nextmsg()                -- an empty message: something happened
    local line = logs:nextmsg(0)
    if line then print("log:", line) end
    local job = jobs:nextmsg(0)
    if job == "stop" then running = false
    elseif job then print("job:", job, "squared:", job * job) end
end
assert(producer:join())
