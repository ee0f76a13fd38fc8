-- Races of the lock per listener buffer (issue 12): an add and a finish
-- racing; a listener must not report the end of the stream while a message it will
-- deliver later is queued. Run under TSan by make tsan (it uses testthread).
local mtmsg = require "mtmsg"
local H = require "helpers"

local T = H.TIMEOUT

-- Adds "m" to each buffer whose id arrives on cmdid (0 ends), answers on replyid
-- whether the add succeeded.
local function adder(cmdid, replyid)
    local mtmsg = require "mtmsg"
    local cmd, reply = mtmsg.buffer(cmdid), mtmsg.buffer(replyid)
    while true do
        local id = cmd:nextmsg()
        if id == 0 then return "ok" end
        local b = mtmsg.buffer(id)
        reply:addmsg((pcall(b.addmsg, b, "m")))
    end
end

-- Finishes each buffer whose id arrives on cmdid (0 ends), then says so on doneid: the
-- main thread holds the only handle of the buffer, and keeps it until then (a buffer
-- collected before the finisher looks it up is an unknown_object there).
local function finisher(cmdid, doneid)
    local mtmsg = require "mtmsg"
    local cmd, done = mtmsg.buffer(cmdid), mtmsg.buffer(doneid)
    while true do
        local id = cmd:nextmsg()
        if id == 0 then return "ok" end
        mtmsg.buffer(id):finish()
        done:addmsg(true)
    end
end

describe("listener buffer races", function()
    it("finish racing an add: the listener delivers the added message before EOS", function()
        local thread = H.thread()
        local acmd, fcmd, reply = mtmsg.newbuffer(), mtmsg.newbuffer(), mtmsg.newbuffer()
        local fdone = mtmsg.newbuffer()
        local ta = thread.start(adder, acmd:id(), reply:id())
        local tf = thread.start(finisher, fcmd:id(), fdone:id())
        local rounds = tonumber(os.getenv("MTMSG_REVIEW_ROUNDS") or "") or 20000
        local bad, delivered = nil, 0
        for i = 1, rounds do
            local lst = mtmsg.newlistener()
            local b = lst:newbuffer()
            acmd:addmsg(b:id()); fcmd:addmsg(b:id())
            local first = lst:nextmsg(T)
            local added = reply:nextmsg(T)
            -- (when the add won, the finisher may still be behind: a thread stalled
            -- for a few ms used to find a buffer of an earlier round collected)
            if fdone:nextmsg(T) ~= true then
                bad = "round " .. i .. ": the finisher did not finish the buffer"
                break
            end
            if first == "m" then
                delivered = delivered + 1
            elseif added then
                bad = "round " .. i .. ": listener said " .. tostring(first)
                      .. " with an added message queued (" .. b:msgcnt() .. ")"
                break
            end
        end
        acmd:addmsg(0); fcmd:addmsg(0)
        H.same(H.ok(H.join(ta)), { "ok" })
        H.same(H.ok(H.join(tf)), { "ok" })
        assert(not bad, bad)
    end)
end)
