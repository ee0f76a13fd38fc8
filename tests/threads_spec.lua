-- Buffers and listeners shared between threads (each with its own lua_State, started by
-- the test-only module testthread): nothing lost or duplicated, FIFO per producer,
-- blocked receivers woken by add, abort and close, no lost wake-ups, handing objects over
-- by id and by name. Threads synchronise through messages only; timeouts are upper bounds
-- that detect a hang.
--
-- Thread bodies are dumped into a fresh state: they may use only their arguments and
-- globals (require "mtmsg" inside), never locals of this file.
local mtmsg = require "mtmsg"
local H = require "helpers"
local checkerr, pack, same = H.checkerr, H.pack, H.same
local T = H.TIMEOUT

-- ===== thread bodies =====

local function producer(id, first, n)
    local mtmsg = require "mtmsg"
    local b = mtmsg.buffer(id)
    for i = first, first + n - 1 do b:addmsg(i) end
    return n
end

local function tagged_producer(id, tag, n)
    local mtmsg = require "mtmsg"
    local b = mtmsg.buffer(id)
    for i = 1, n do b:addmsg(tag, i) end
    return n
end

-- Takes 1..n in order from buffer id; returns "ok" or what went wrong.
local function consumer(id, n)
    local mtmsg = require "mtmsg"
    local b = mtmsg.buffer(id)
    for i = 1, n do
        local v = b:nextmsg(10)
        if v ~= i then return "message " .. i .. " was " .. tostring(v) end
    end
    if select("#", b:nextmsg(0)) ~= 0 then return "extra message" end
    return "ok"
end

-- Takes numbers until "stop"; returns count, sum, and whether they came in rising order.
local function counting_consumer(id)
    local mtmsg = require "mtmsg"
    local b = mtmsg.buffer(id)
    local count, sum, last, rising = 0, 0, 0, true
    while true do
        local v = b:nextmsg(10)
        if v == "stop" then break end
        if v == nil then return "timeout" end
        if v <= last then rising = false end
        last = v
        count, sum = count + 1, sum + v
    end
    return count, sum, rising
end

-- Says "ready" on buffer syncid, then blocks on nextmsg() of buffer (kind "buffer"),
-- listener (kind "listener") or a reader on a buffer (kind "reader"), without timeout.
local function waiter(syncid, kind, id)
    local mtmsg = require "mtmsg"
    local sync = mtmsg.buffer(syncid)
    local obj = kind == "listener" and mtmsg.listener(id) or mtmsg.buffer(id)
    sync:addmsg("ready")
    if kind == "reader" then
        local r = mtmsg.newreader()
        assert(r:nextmsg(obj) == true)
        return r:next(10)
    end
    return obj:nextmsg()
end

-- Like waiter, but looks the buffer up by name and waits with a timeout.
local function named_waiter(syncid, name)
    local mtmsg = require "mtmsg"
    local b = mtmsg.buffer(name)
    mtmsg.buffer(syncid):addmsg("ready")
    return b:nextmsg(10)
end

-- rounds times: waits for "go" on its own buffer ctlid, says who on sync, waits up to
-- 10 s on the listener (who == "L") or buffer (who == "B") `id`, and reports what it got
-- on buffer resid.
local function round_waiter(ctlid, syncid, resid, who, id, rounds)
    local mtmsg = require "mtmsg"
    local ctl, sync, res = mtmsg.buffer(ctlid), mtmsg.buffer(syncid), mtmsg.buffer(resid)
    local obj = who == "L" and mtmsg.listener(id) or mtmsg.buffer(id)
    for round = 1, rounds do
        if ctl:nextmsg(30) ~= "go" then return "no go in round " .. round end
        sync:addmsg(who)
        local v = obj:nextmsg(10)
        res:addmsg(who, round, v)
        if v == nil then return "timeout in round " .. round end
    end
    return "ok"
end

-- Runs blocking calls on objects that are closed, aborted or without buffers; each must
-- raise at once. Returns the error messages.
local function blocked_states()
    local mtmsg = require "mtmsg"
    local out = {}
    local function try(f)
        local ok, err = pcall(f)
        out[#out + 1] = ok and "no error" or tostring(err)
    end
    local b = mtmsg.newbuffer()
    b:close()
    try(function() b:nextmsg() end)
    b = mtmsg.newbuffer()
    b:abort()
    try(function() b:nextmsg() end)
    local lst = mtmsg.newlistener()
    try(function() lst:nextmsg() end)
    try(function() mtmsg.newreader():nextmsg(lst) end)
    local keep = lst:newbuffer()
    lst:abort()
    try(function() lst:nextmsg() end)
    lst:abort(false)
    lst:close()
    try(function() lst:nextmsg() end)
    return table.concat(out, "\n"), keep ~= nil
end

-- Holds buffer id as the only handle: says "have it" on sync, waits for "check" on ctl,
-- then uses the buffer and returns what it read back.
local function keeper(syncid, ctlid, id)
    local mtmsg = require "mtmsg"
    local b = mtmsg.buffer(id)
    local sync, ctl = mtmsg.buffer(syncid), mtmsg.buffer(ctlid)
    sync:addmsg("have it")
    assert(ctl:nextmsg(10) == "check")
    b:addmsg("still here")
    return b:nextmsg(0)
end

local function sender_by_name(name, value)
    local mtmsg = require "mtmsg"
    return mtmsg.buffer(name):addmsg(value)
end

-- Takes from the listener buffers ids... directly (buffer:nextmsg(0), round and round)
-- and forwards each message to buffer outid, until buffer stopid holds a message.
local function direct_taker(outid, stopid, ...)
    local mtmsg = require "mtmsg"
    local out, stop = mtmsg.buffer(outid), mtmsg.buffer(stopid)
    local bufs = {}
    for k, id in ipairs({ ... }) do bufs[k] = mtmsg.buffer(id) end
    local taken = 0
    while stop:msgcnt() == 0 do
        for _, b in ipairs(bufs) do
            local tag, i = b:nextmsg(0)
            if tag then
                out:addmsg(tag, i)
                taken = taken + 1
            end
        end
    end
    return taken
end

-- rounds times: takes one message from listener lid (waiting without a timeout) and
-- answers it on buffer replyid.
local function listener_echo(lid, replyid, rounds)
    local mtmsg = require "mtmsg"
    local lst, reply = mtmsg.listener(lid), mtmsg.buffer(replyid)
    for _ = 1, rounds do reply:addmsg(lst:nextmsg()) end
    return "ok"
end

-- ===== helpers =====

-- Thread joins and their results (tests/helpers.lua).
local join, ok, failed = H.join, H.ok, H.failed

local function global_rescue()
    mtmsg.abort()
end

-- Starts waiter(kind, obj) and returns once it has said "ready" (it is then about to
-- block, or blocked).
local function start_waiter(kind, obj, sync)
    local thread = H.thread()
    local t = thread.start(waiter, sync:id(), kind, obj:id())
    assert(sync:nextmsg(T) == "ready", "waiter did not start")
    return t
end

describe("threads", function()
    local thread

    before_each(function()
        thread = H.thread()
    end)

    after_each(function()
        mtmsg.abort(false)
    end)

    it("testthread runs a function with arguments", function()
        local t = thread.start(function(a, b) return a + b, "x" end, 1, 2)
        same(ok(join(t)), { 3, "x" })
    end)

    describe("nothing lost", function()
        it("one producer, main consumes 100000 messages in order", function()
            local b = mtmsg.newbuffer()
            local n = 100000
            local t = thread.start(producer, b:id(), 1, n)
            for i = 1, n do
                local v = b:nextmsg(T)
                if v ~= i then
                    error("message " .. i .. " was " .. tostring(v))
                end
            end
            same(ok(join(t)), { n })
            same(pack(b:nextmsg(0)), { n = 0 })
        end)

        it("main produces 100000 messages, a thread consumes them in order", function()
            local b = mtmsg.newbuffer()
            local n = 100000
            local t = thread.start(consumer, b:id(), n)
            for i = 1, n do b:addmsg(i) end
            same(ok(join(t, global_rescue)), { "ok" })
        end)

        it("4 producers into one listener: all arrive, in order per producer", function()
            local lst = mtmsg.newlistener()
            local n, k = 25000, 4
            local bufs, ts = {}, {}
            for j = 1, k do
                bufs[j] = lst:newbuffer()
                ts[j] = thread.start(tagged_producer, bufs[j]:id(), j, n)
            end
            local last = {}
            for j = 1, k do last[j] = 0 end
            for _ = 1, n * k do
                local tag, i = lst:nextmsg(T)
                assert(tag, "a message is missing")
                if i ~= last[tag] + 1 then
                    error("producer " .. tag .. ": " .. tostring(i) .. " after " .. last[tag])
                end
                last[tag] = i
            end
            for j = 1, k do same(ok(join(ts[j])), { n }) end
            same(pack(lst:nextmsg(0)), { n = 0 })
        end)

        it("4 producers into one buffer: all arrive, in order per producer", function()
            local b = mtmsg.newbuffer()
            local n, k = 25000, 4
            local ts = {}
            for j = 1, k do ts[j] = thread.start(tagged_producer, b:id(), j, n) end
            local last = { 0, 0, 0, 0 }
            for _ = 1, n * k do
                local tag, i = b:nextmsg(T)
                assert(tag, "a message is missing")
                if i ~= last[tag] + 1 then
                    error("producer " .. tag .. ": " .. tostring(i) .. " after " .. last[tag])
                end
                last[tag] = i
            end
            for j = 1, k do same(ok(join(ts[j])), { n }) end
            same(pack(b:nextmsg(0)), { n = 0 })
        end)

        it("4 consumers of one buffer: each message taken exactly once", function()
            local b = mtmsg.newbuffer()
            local n, k = 40000, 4
            local ts = {}
            for j = 1, k do ts[j] = thread.start(counting_consumer, b:id()) end
            for i = 1, n do b:addmsg(i) end
            for _ = 1, k do b:addmsg("stop") end
            local count, sum = 0, 0
            for j = 1, k do
                local r = ok(join(ts[j], global_rescue))
                assert(r[1] ~= "timeout", "a consumer timed out")
                assert(r[3] == true, "a consumer got messages out of order")
                count, sum = count + r[1], sum + r[2]
            end
            assert(count == n, count .. " messages taken, " .. n .. " sent")
            assert(sum == n * (n + 1) / 2, "some messages were taken twice or not at all")
        end)
    end)

    describe("listener buffers (each with its own lock)", function()
        -- A buffer that gets its first message joins its listener's ready list after
        -- the add unlocked it; one emptied by buffer:nextmsg leaves it after the take.
        -- These races are the window in between (run under TSan by make tsan).
        it("producers, direct takers and the listener: every message once, in order", function()
            local lst = mtmsg.newlistener()
            local out, stop, done = mtmsg.newbuffer(), mtmsg.newbuffer(), mtmsg.newbuffer()
            local n, k = 20000, 3
            local bufs, ids, ts = {}, {}, {}
            for j = 1, k do
                bufs[j] = lst:newbuffer()
                ids[j] = bufs[j]:id()
            end
            local taker = thread.start(direct_taker, out:id(), stop:id(), H.unpack(ids))
            for j = 1, k do ts[j] = thread.start(tagged_producer, ids[j], j, n) end
            local seen, last, fromlst = {}, {}, 0
            for j = 1, k do last[j] = 0 end
            local function note(tag, i, order)
                local key = tag * (n + 1) + i
                assert(not seen[key], "message " .. tag .. "/" .. i .. " taken twice")
                seen[key] = true
                if order then
                    assert(i > last[tag], "producer " .. tag .. ": " .. i .. " after " .. last[tag])
                    last[tag] = i
                end
            end
            local results, joined = {}, 0
            while joined < k do                 -- take through the listener meanwhile
                local tag, i = lst:nextmsg(0)
                if tag then
                    note(tag, i, true)
                    fromlst = fromlst + 1
                else
                    for j = 1, k do
                        if not results[j] then
                            local r = pack(ts[j]:join(0))
                            if r[1] ~= nil then
                                results[j] = r
                                joined = joined + 1
                            end
                        end
                    end
                end
            end
            for j = 1, k do same(ok(results[j]), { n }) end
            stop:addmsg(true)
            local direct = ok(join(taker, global_rescue))[1]
            for _, tag, i in out:messages(0) do note(tag, i, false) end
            for _, tag, i in lst:messages(0) do note(tag, i, true); fromlst = fromlst + 1 end
            assert(fromlst + direct == n * k,
                   fromlst .. " + " .. direct .. " messages taken, " .. n * k .. " sent")
            for j = 1, k do assert(bufs[j]:msgcnt() == 0) end
            -- the ready list is consistent: nothing stale, and new messages are served
            -- round-robin at once
            same(pack(lst:nextmsg(0)), { n = 0 })
            for j = k, 1, -1 do bufs[j]:addmsg(j) end
            for j = k, 1, -1 do same(pack(lst:nextmsg(0)), { j }) end
            same(pack(lst:nextmsg(0)), { n = 0 })
        end)

        it("a listener waiting without timeout hears of every first message", function()
            local lst = mtmsg.newlistener()
            local b1, b2, reply = lst:newbuffer(), lst:newbuffer(), mtmsg.newbuffer()
            local rounds = 5000
            local t = thread.start(listener_echo, lst:id(), reply:id(), rounds)
            for i = 1, rounds do
                local b = i % 2 == 0 and b1 or b2
                b:addmsg(i)     -- 0 -> 1 while the echo thread waits or spins
                local got = reply:nextmsg(T)
                if got ~= i then
                    mtmsg.abort()
                    error("round " .. i .. ": got " .. tostring(got))
                end
            end
            same(ok(join(t, global_rescue)), { "ok" })
        end)

        it("buffer:nextmsg and clear on a listener buffer take it out of the ready list", function()
            local lst = mtmsg.newlistener()
            local b1, b2 = lst:newbuffer(), lst:newbuffer()
            b1:addmsg(1); b2:addmsg(2); b1:addmsg(3)
            same(pack(b1:nextmsg(0)), { 1 })
            same(pack(b1:nextmsg(0)), { 3 })
            b2:clear()
            same(pack(lst:nextmsg(0)), { n = 0 })
            b2:addmsg(4); b1:addmsg(5)
            same(pack(lst:nextmsg(0)), { 4 })
            same(pack(lst:nextmsg(0)), { 5 })
            same(pack(lst:nextmsg(0)), { n = 0 })
        end)
    end)

    describe("a blocked receiver", function()
        for _, kind in ipairs { "buffer", "reader" } do
            it("(" .. kind .. ") is woken by addmsg", function()
                local sync, b = mtmsg.newbuffer(), mtmsg.newbuffer()
                local t = start_waiter(kind, b, sync)
                b:addmsg("wake", 42)
                same(ok(join(t, function() b:close() end)), { "wake", 42 })
            end)

            it("(" .. kind .. ") is woken by buffer:abort()", function()
                local sync, b = mtmsg.newbuffer(), mtmsg.newbuffer()
                local t = start_waiter(kind, b, sync)
                b:abort()
                failed(join(t, function() b:close() end), "operation_aborted")
            end)

            it("(" .. kind .. ") is woken by buffer:close()", function()
                local sync, b = mtmsg.newbuffer(), mtmsg.newbuffer()
                local t = start_waiter(kind, b, sync)
                b:close()
                failed(join(t, global_rescue), "object_closed")
            end)

            it("(" .. kind .. ") is woken by mtmsg.abort()", function()
                local sync, b = mtmsg.newbuffer(), mtmsg.newbuffer()
                local t = start_waiter(kind, b, sync)
                mtmsg.abort()
                failed(join(t, function() b:close() end), "operation_aborted")
            end)
        end

        it("on a listener buffer is woken by listener:abort() and listener:close()", function()
            local sync, lst = mtmsg.newbuffer(), mtmsg.newlistener()
            local b = lst:newbuffer()
            local t = start_waiter("buffer", b, sync)
            lst:abort()
            failed(join(t, global_rescue), "operation_aborted")
            lst:abort(false)
            t = start_waiter("buffer", b, sync)
            lst:close()
            failed(join(t, global_rescue), "object_closed")
        end)

        it("on a listener is woken by an add to one of its buffers", function()
            local sync, lst = mtmsg.newbuffer(), mtmsg.newlistener()
            local b1, b2 = lst:newbuffer(), lst:newbuffer()
            local t = start_waiter("listener", lst, sync)
            b2:addmsg("via b2")
            same(ok(join(t, global_rescue)), { "via b2" })
            assert(b1)
        end)

        it("on a listener is woken by listener:abort()", function()
            local sync, lst = mtmsg.newbuffer(), mtmsg.newlistener()
            local b = lst:newbuffer()
            local t = start_waiter("listener", lst, sync)
            lst:abort()
            failed(join(t, global_rescue), "operation_aborted")
            assert(b)
        end)

        it("on a listener is woken by listener:close()", function()
            local sync, lst = mtmsg.newbuffer(), mtmsg.newlistener()
            local b = lst:newbuffer()
            local t = start_waiter("listener", lst, sync)
            lst:close()
            failed(join(t, global_rescue), "object_closed")
            assert(b)
        end)

        it("on a listener is woken by mtmsg.abort()", function()
            local sync, lst = mtmsg.newbuffer(), mtmsg.newlistener()
            local b = lst:newbuffer()
            local t = start_waiter("listener", lst, sync)
            mtmsg.abort()
            failed(join(t, function() lst:close() end), "operation_aborted")
            assert(b)
        end)

        for _, how in ipairs { "close", "abort" } do
            it("every waiter of one buffer is woken by " .. how, function()
                local sync, b = mtmsg.newbuffer(), mtmsg.newbuffer()
                local ts = {}
                for j = 1, 3 do ts[j] = start_waiter("buffer", b, sync) end
                b[how](b)
                for j = 1, 3 do
                    failed(join(ts[j], global_rescue),
                           how == "close" and "object_closed" or "operation_aborted")
                end
            end)
        end
    end)

    it("nextmsg() without timeout raises at once on closed, aborted and empty objects",
       function()
        local t = thread.start(blocked_states)
        local r = ok(join(t, global_rescue))
        local lines = {}
        for line in (r[1] .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end
        local want = { "object_closed", "operation_aborted", "no_buffers", "no_buffers",
                       "operation_aborted", "object_closed" }
        for i, kind in ipairs(want) do
            assert(lines[i] and lines[i]:find("^mtmsg%.error%." .. kind),
                   "case " .. i .. ": expected " .. kind .. ", got " .. tostring(lines[i]))
        end
    end)

    it("no lost wake-up between a listener waiter and a buffer waiter", function()
        local sync, res = mtmsg.newbuffer(), mtmsg.newbuffer()
        local lst = mtmsg.newlistener()
        local b = lst:newbuffer()
        local rounds = 20
        local ctla, ctlb = mtmsg.newbuffer(), mtmsg.newbuffer()
        local ta = thread.start(round_waiter, ctla:id(), sync:id(), res:id(), "L", lst:id(),
                                rounds)
        local tb = thread.start(round_waiter, ctlb:id(), sync:id(), res:id(), "B", b:id(),
                                rounds)
        for round = 1, rounds do
            -- one round at a time: a fast waiter must not take the next round's message
            ctla:addmsg("go")
            ctlb:addmsg("go")
            local ready = {}
            for _ = 1, 2 do
                local who = sync:nextmsg(T)
                assert(who, "round " .. round .. ": a waiter did not get ready")
                ready[who] = true
            end
            assert(ready.L and ready.B)
            b:addmsg(2 * round - 1)
            b:addmsg(2 * round)
            local got = {}
            for _ = 1, 2 do
                local who, r, v = res:nextmsg(2 * T)
                assert(who, "round " .. round .. ": a waiter did not return")
                assert(r == round)
                assert(v ~= nil, "round " .. round .. ": waiter " .. who
                                 .. " was not woken (timed out)")
                got[#got + 1] = v
            end
            table.sort(got)
            assert(got[1] == 2 * round - 1 and got[2] == 2 * round,
                   "round " .. round .. ": got " .. tostring(got[1]) .. ", " .. tostring(got[2]))
        end
        same(ok(join(ta, global_rescue)), { "ok" })
        same(ok(join(tb, global_rescue)), { "ok" })
    end)

    describe("handing over", function()
        it("a buffer by name", function()
            local sync = mtmsg.newbuffer()
            local b = mtmsg.newbuffer("threads-by-name")
            local t = thread.start(named_waiter, sync:id(), "threads-by-name")
            assert(sync:nextmsg(T) == "ready")
            b:addmsg("hello by name")
            same(ok(join(t)), { "hello by name" })
            local lst = mtmsg.newlistener()
            local lb = lst:newbuffer("threads-by-name-2")
            t = thread.start(sender_by_name, "threads-by-name-2", "back")
            same(ok(join(t)), { true })
            assert(lst:nextmsg(T) == "back")
            assert(lb)
        end)

        it("a buffer by id, as in the documented example", function()
            local b = mtmsg.newbuffer()
            local t = thread.start(function(bufferId)
                local mtmsg = require("mtmsg")
                local buffer = mtmsg.buffer(bufferId)
                return buffer:nextmsg()
            end, b:id())
            b:addmsg("Hello", "world!")
            same(ok(join(t, function() b:close() end)), { "Hello", "world!" })
        end)

        it("a buffer kept alive only by a thread's handle", function()
            local sync, ctl = mtmsg.newbuffer(), mtmsg.newbuffer()
            local hold = { mtmsg.newbuffer("threads-kept") }
            local id = hold[1]:id()
            local t = thread.start(keeper, sync:id(), ctl:id(), id)
            assert(sync:nextmsg(T) == "have it")
            hold[1] = nil
            H.gc()
            assert(mtmsg.buffer(id):id() == id) -- the thread's handle keeps it
            assert(mtmsg.buffer("threads-kept"):id() == id)
            H.gc()
            ctl:addmsg("check")
            same(ok(join(t, global_rescue)), { "still here" })
            H.gc()
            checkerr("unknown_object", mtmsg.buffer, id)
            checkerr("unknown_object", mtmsg.buffer, "threads-kept")
        end)

        it("the documented listener example with threads", function()
            local threadIn = mtmsg.newbuffer()
            local lst = mtmsg.newlistener()
            local hold = { lst:newbuffer() }
            local t = thread.start(function(inId, outId)
                local mtmsg = require("mtmsg")
                local threadIn = mtmsg.buffer(inId)
                local threadOut = mtmsg.buffer(outId)
                threadOut:addmsg("started")
                assert(threadIn:nextmsg(10) == "exit")
                threadOut:addmsg("finished")
            end, threadIn:id(), hold[1]:id())
            assert(lst:nextmsg(T) == "started")
            hold[1] = nil
            H.gc()
            threadIn:addmsg("exit")
            assert(lst:nextmsg(T) == "finished")
            ok(join(t, global_rescue))
            H.gc()
            checkerr("no_buffers", function() lst:nextmsg(0) end)
        end)
    end)
end)
