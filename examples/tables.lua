-- Tables in messages: send structured data to another thread without serializing it
-- by hand. Tables are copied by value when the message is added and arrive as new
-- tables; anything that cannot be copied is refused at once, with its path.
local mtmsg = require "mtmsg"
local thread = require "testthread"

local jobs, results = mtmsg.newbuffer(), mtmsg.newbuffer()

local worker = thread.start(function(jobs_id, results_id)
    local mtmsg = require "mtmsg"
    local jobs, results = mtmsg.buffer(jobs_id), mtmsg.buffer(results_id)
    while true do
        local job = jobs:nextmsg()
        if job == "stop" then break end
        local sum = 0
        for _, v in ipairs(job.values) do sum = sum + v end
        results:addmsg({ id = job.id, sum = sum, tags = job.tags })     -- a table back
    end
end, jobs:id(), results:id())

local job = { id = 1, values = { 1, 2, 3, 4 }, tags = { urgent = true } }
jobs:addmsg(job)
job.values[1] = 100                          -- the message holds a copy: no effect
jobs:addmsg({ id = 2, values = { 10, 20 }, tags = {} })

for _ = 1, 2 do
    local r = results:nextmsg()
    print(("job %d: sum %d, urgent: %s"):format(r.id, r.sum, tostring(r.tags.urgent)))
end

-- Checked at send time: a Lua function deep inside is refused, nothing is sent.
local ok, err = pcall(jobs.addmsg, jobs, { id = 3, config = { hooks = { print, function() end } } })
print(ok, err)                               -- ... (t.config.hooks[2]: Lua function not supported)
assert(not ok and err:find("t.config.hooks[2]", 1, true) and jobs:msgcnt() == 0)

jobs:addmsg("stop")
assert(worker:join())
