-- Flow control and streams (extensions, issue 10): message count limits, waitaddmsg
-- (blocking send in arrival order), finish + mtmsg.EOS (end of stream after drain),
-- messages() iterators, peekmsg/bytes/highwater/waitingsenders, and the C APIs on
-- bounded and finished buffers. Threads synchronise through messages and through
-- waitingsenders(); timeouts only detect hangs.
--
-- Thread bodies are dumped into a fresh state: they may use only their arguments.
local mtmsg = require "mtmsg"
local H = require "helpers"
local checkerr, checkargerr, pack, same = H.checkerr, H.checkargerr, H.pack, H.same
local T = H.TIMEOUT

-- ===== thread bodies =====

-- Sends (tag, 1), ..., (tag, n) with waitaddmsg (no timeout) to buffer id.
local function blocking_producer(id, tag, n)
    local mtmsg = require "mtmsg"
    local b = mtmsg.buffer(id)
    for i = 1, n do
        if b:waitaddmsg(nil, tag, i) ~= true then return "not sent: " .. i end
    end
    return "ok"
end

-- Blocks in waitaddmsg(timeout, value) on buffer id; returns its result.
local function one_sender(id, value, timeout)
    local mtmsg = require "mtmsg"
    return mtmsg.buffer(id):waitaddmsg(timeout, value)
end

-- The same through a writer.
local function writer_sender(id, value)
    local mtmsg = require "mtmsg"
    local w = mtmsg.newwriter()
    w:add(value)
    return w:waitaddmsg(mtmsg.buffer(id))
end

-- Receives until end of stream with the iterator; returns count and sum.
local function iter_consumer(id)
    local mtmsg = require "mtmsg"
    local count, sum = 0, 0
    for _, v in mtmsg.buffer(id):messages(10) do
        count, sum = count + 1, sum + v
    end
    return count, sum, mtmsg.buffer(id):nextmsg(0) == mtmsg.EOS
end

-- ===== helpers =====

local ok, failed = H.ok, H.failed
-- A sender still blocked after the timeout is freed by a global abort.
local function join(t) return H.join(t, function() mtmsg.abort() end) end

-- Waits (polling, no sleep) until b has n senders waiting in waitaddmsg: the observable
-- "arrival" of a blocked sender.
local function await_senders(b, n)
    local deadline = mtmsg.time() + T
    while b:waitingsenders() ~= n do
        assert(mtmsg.time() < deadline, "senders did not block: " .. b:waitingsenders()
                                        .. " waiting, expected " .. n)
    end
end

-- Like await_senders, while thread t still runs: true once b has n senders waiting,
-- false when t has ended first (then n may never be reached).
local function await_senders_while(b, n, t)
    local deadline = mtmsg.time() + T
    while b:waitingsenders() ~= n do
        if t:join(0) ~= nil then return false end
        assert(mtmsg.time() < deadline, "senders did not block: " .. b:waitingsenders()
                                        .. " waiting, expected " .. n)
    end
    return true
end

-- A full buffer of limit 1 with one queued "seed" message.
local function full_buffer()
    local b = mtmsg.newbuffer()
    b:setlimit(1)
    assert(b:addmsg("seed") == true)
    return b
end

describe("flow control", function()
    local thread

    before_each(function()
        thread = H.thread()
    end)

    after_each(function()
        mtmsg.abort(false)
    end)

    describe("count limit", function()
        it("is off by default and full buffers make addmsg return false", function()
            local b = mtmsg.newbuffer()
            assert(b:limit() == nil)
            for i = 1, 100 do assert(b:addmsg(i)) end
            b:clear()
            b:setlimit(3)
            assert(b:limit() == 3)
            assert(b:addmsg(1) and b:addmsg(2) and b:addmsg(3))
            assert(b:addmsg(4) == false)
            assert(b:msgcnt() == 3)
            assert(b:nextmsg() == 1)
            assert(b:addmsg(4) == true)
            assert(b:setmsg("x") == true)           -- setmsg replaces: always fits
            assert(b:msgcnt() == 1)
            b:setlimit(nil)
            assert(b:limit() == nil)
            for i = 1, 10 do assert(b:addmsg(i)) end
            b:setlimit(math.huge)                   -- no limit either
            assert(b:limit() == nil)
        end)

        it("applies to listener buffers and writers", function()
            local l = mtmsg.newlistener()
            local b = l:newbuffer()
            b:setlimit(1)
            assert(b:addmsg("a") == true and b:addmsg("b") == false)
            local w = mtmsg.newwriter()
            w:add("c")
            assert(w:addmsg(b) == false)
            assert(l:nextmsg(0) == "a")
            assert(w:addmsg(b) == true)
            assert(l:nextmsg(0) == "c")
        end)

        it("rejects bad limits with a clear argument error", function()
            local b = mtmsg.newbuffer()
            checkargerr("bad argument #1 to 'setlimit' (message count limit must be a positive integer or nil, got -1)", function() b:setlimit(-1) end)
            checkargerr(nil, function() b:setlimit(0 / 0) end)
            checkargerr("bad argument #1 to 'setlimit' (message count limit must be a positive integer or nil, got 0)", function() b:setlimit(0) end)
            checkargerr("bad argument #1 to 'setlimit' (message count limit must be a positive integer or nil, got 1.5)", function() b:setlimit(1.5) end)
            checkargerr("bad argument #1 to 'setlimit' (message count limit or nil expected, got string)", function() b:setlimit("2") end)
            for i = 1, 5 do b:addmsg(i) end
            checkargerr("bad argument #1 to 'setlimit' (message count limit 4 is below the 5 messages queued)", function() b:setlimit(4) end)
            assert(b:limit() == nil)
            b:setlimit(5)
            assert(b:limit() == 5)
            b:close()
            checkerr("object_closed", b.setlimit, b, 5)
        end)
    end)

    describe("waitaddmsg", function()
        it("adds at once when there is room, returns false on timeout when full", function()
            local b = mtmsg.newbuffer()
            assert(b:waitaddmsg(nil, 1, "two") == true)
            same(pack(b:nextmsg()), { 1, "two" })
            assert(b:waitaddmsg(0) == true)              -- an empty message
            assert(select("#", b:nextmsg()) == 0 and b:msgcnt() == 0)
            b:setlimit(1)
            assert(b:waitaddmsg(0, "a") == true)
            assert(b:waitaddmsg(0, "b") == false)
            assert(b:waitaddmsg(0.01, "b") == false)
            assert(b:waitaddmsg(-1, "b") == false)
            assert(b:waitaddmsg(0 / 0, "b") == false)
            assert(b:msgcnt() == 1 and b:waitingsenders() == 0)
            b:nonblock(true)
            assert(b:waitaddmsg(nil, "b") == false)      -- nonblock: nil means no wait
        end)

        it("waits for bytes in a fixed-size buffer", function()
            local b = mtmsg.newbuffer(20, 0)
            assert(b:addmsg(("x"):rep(15)) == true)
            assert(b:waitaddmsg(0, "yy") == false)
            local t = thread.start(one_sender, b:id(), ("y"):rep(15))
            await_senders(b, 1)
            assert(b:nextmsg() == ("x"):rep(15))
            same(ok(join(t)), { true })
            assert(b:nextmsg() == ("y"):rep(15))
        end)

        it("checks its arguments before anything is sent", function()
            local b = mtmsg.newbuffer()
            checkargerr("bad argument #1 to 'waitaddmsg' (timeout seconds or nil expected, got string)",
                        function() b:waitaddmsg("hello") end)
            checkargerr(nil, b.waitaddmsg, b, 1, function() end)   -- a Lua function is no element
            assert(b:msgcnt() == 0)
            local w = mtmsg.newwriter()
            checkargerr(nil, w.waitaddmsg, w, b, "x")
        end)

        it("a take wakes a blocked sender (buffer, writer, listener buffer)", function()
            local b = full_buffer()
            local t = thread.start(one_sender, b:id(), "late")
            await_senders(b, 1)
            assert(b:addmsg("jump") == false)            -- no queue jumping
            assert(b:nextmsg() == "seed")
            same(ok(join(t)), { true })
            assert(b:nextmsg() == "late")
            assert(b:addmsg("seed"))
            t = thread.start(writer_sender, b:id(), "w")
            await_senders(b, 1)
            assert(b:nextmsg() == "seed")
            same(ok(join(t)), { true })
            assert(b:nextmsg() == "w")
            local l = mtmsg.newlistener()
            local lb = l:newbuffer()
            lb:setlimit(1)
            lb:addmsg("seed")
            t = thread.start(one_sender, lb:id(), "lb")
            await_senders(lb, 1)
            assert(l:nextmsg() == "seed")
            same(ok(join(t)), { true })
            assert(l:nextmsg() == "lb")
        end)

        it("raising limit or clear makes room for blocked senders", function()
            local b = full_buffer()
            local t = thread.start(one_sender, b:id(), "a")
            await_senders(b, 1)
            b:setlimit(2)
            same(ok(join(t)), { true })
            assert(b:msgcnt() == 2)
            t = thread.start(one_sender, b:id(), "b")
            await_senders(b, 1)
            b:clear()
            same(ok(join(t)), { true })
            same(pack(b:nextmsg(0)), { "b" })
        end)

        for _, how in ipairs({ "close", "abort", "mtmsg.abort", "finish", "listener close",
                               "listener abort" }) do
            it("a blocked sender wakes on " .. how, function()
                local l = mtmsg.newlistener()
                local b = how:find("listener") and l:newbuffer() or mtmsg.newbuffer()
                b:setlimit(1)
                b:addmsg("seed")
                local t = thread.start(one_sender, b:id(), "x")
                await_senders(b, 1)
                if how == "close" then b:close()
                elseif how == "abort" then b:abort()
                elseif how == "mtmsg.abort" then mtmsg.abort()
                elseif how == "finish" then b:finish()
                elseif how == "listener close" then l:close()
                else l:abort() end
                local r = join(t)
                failed(r, how:find("close") and "object_closed"
                          or how == "finish" and "stream_ended" or "operation_aborted")
                assert(b:waitingsenders() == 0)
            end)
        end

        it("a sender that times out leaves the queue to the others", function()
            -- The quitter must time out while queued between first and third, so its
            -- timeout must outlast the start of third: a slow machine (valgrind, TSan,
            -- a loaded host) may take longer than any fixed time. When the quitter is
            -- gone before third is seen queued behind it, the round proves nothing: it
            -- is dropped and tried again with a ten times longer timeout.
            local b, first, quitter, third
            for try, quit in ipairs { 0.05, 0.5, 5 } do
                b = full_buffer()
                first = thread.start(one_sender, b:id(), "first")
                await_senders(b, 1)
                quitter = thread.start(one_sender, b:id(), "quitter", quit)
                local queued = await_senders_while(b, 2, quitter)
                if queued then
                    third = thread.start(one_sender, b:id(), "third")
                    queued = await_senders_while(b, 3, quitter)
                end
                if queued then break end
                same(ok(join(quitter)), { false })
                b:close()
                failed(join(first), "object_closed")
                if third then failed(join(third), "object_closed") end
                third = nil
                assert(try < 3, "third did not queue within the quitter's " .. quit .. " s")
            end
            same(ok(join(quitter)), { false })
            await_senders(b, 2)
            assert(b:nextmsg() == "seed")
            same(ok(join(first)), { true })
            assert(b:nextmsg() == "first")
            same(ok(join(third)), { true })
            assert(b:nextmsg() == "third")
            assert(b:msgcnt() == 0 and b:waitingsenders() == 0)
        end)

        it("blocked senders get room in arrival order", function()
            local b = full_buffer()
            local ts = {}
            for k = 1, 8 do                     -- sender k blocks before k + 1 starts
                ts[k] = thread.start(one_sender, b:id(), k)
                await_senders(b, k)
            end
            assert(b:nextmsg() == "seed")
            for k = 1, 8 do
                assert(b:nextmsg(T) == k, "sender " .. k .. " was not served in order")
            end
            for k = 1, 8 do same(ok(join(ts[k])), { true }) end
        end)

        it("8 producers on a 1-message buffer: exactly once, FIFO per producer", function()
            local b = mtmsg.newbuffer()
            b:setlimit(1)
            local n = 300
            local ts = {}
            for k = 1, 8 do ts[k] = thread.start(blocking_producer, b:id(), k, n) end
            local last = {}
            for k = 1, 8 do last[k] = 0 end
            for _ = 1, 8 * n do
                local tag, i = b:nextmsg(T)
                assert(tag, "timeout: a producer is stuck")
                assert(i == last[tag] + 1, "producer " .. tag .. ": " .. i .. " after " .. last[tag])
                last[tag] = i
                assert(b:msgcnt() <= 1)
            end
            for k = 1, 8 do
                assert(last[k] == n)
                same(ok(join(ts[k])), { "ok" })
            end
            assert(select("#", b:nextmsg(0)) == 0)
            assert(b:highwater() == 1)
        end)

        it("no lost wake-up between a blocked sender and a blocked receiver", function()
            -- both sides wait without timeout: a lost wake-up hangs (join detects it)
            local b = mtmsg.newbuffer()
            b:setlimit(1)
            local n = 5000
            local t = thread.start(iter_consumer, b:id())
            for i = 1, n do assert(b:waitaddmsg(nil, i)) end
            b:finish()
            same(ok(join(t)), { n, n * (n + 1) / 2, true })
        end)
    end)

    describe("finish (end of stream)", function()
        it("delivers every queued message, then mtmsg.EOS, at once and again", function()
            local b = mtmsg.newbuffer()
            b:addmsg(1); b:addmsg(2, "x"); b:addmsg()
            assert(b:isfinished() == false)
            b:finish()
            b:finish()                                  -- idempotent
            assert(b:isfinished() == true)
            assert(b:nextmsg() == 1)
            same(pack(b:nextmsg()), { 2, "x" })
            assert(select("#", b:nextmsg()) == 0)       -- the empty message
            assert(b:nextmsg() == mtmsg.EOS)            -- no wait, no timeout given
            assert(b:nextmsg(0) == mtmsg.EOS)
            assert(tostring(mtmsg.EOS) == "mtmsg.EOS")
            assert(select("#", mtmsg.newbuffer():nextmsg(0)) == 0)   -- a timeout: nothing
            local r = mtmsg.newreader()
            same(pack(r:nextmsg(b)), { false, mtmsg.EOS })
        end)

        it("makes senders raise stream_ended", function()
            local b = mtmsg.newbuffer()
            b:addmsg(1)
            b:finish()
            checkerr("stream_ended", b.addmsg, b, 2)
            checkerr("stream_ended", b.setmsg, b, 2)
            checkerr("stream_ended", b.waitaddmsg, b, 0, 2)
            local w = mtmsg.newwriter()
            w:add(3)
            checkerr("stream_ended", w.addmsg, w, b)
            checkerr("stream_ended", w.waitaddmsg, w, b)
            assert(mtmsg.error.stream_ended == "mtmsg.error.stream_ended")
            assert(b:msgcnt() == 1 and b:nextmsg() == 1)
        end)

        it("wakes a blocked receiver with EOS; close keeps its meaning", function()
            local b = mtmsg.newbuffer()
            local t = thread.start(function(id)
                local mtmsg = require "mtmsg"
                return mtmsg.buffer(id):nextmsg() == mtmsg.EOS
            end, b:id())
            b:finish()
            same(ok(join(t)), { true })
            b:close()
            checkerr("object_closed", b.nextmsg, b)
            checkerr("object_closed", b.finish, b)
        end)

        it("a listener ends when all its buffers are finished and drained", function()
            local l = mtmsg.newlistener()
            local b1, b2 = l:newbuffer(), l:newbuffer()
            b1:addmsg(1); b2:addmsg(2)
            b1:finish()
            assert(l:nextmsg(0) == 1 and l:nextmsg(0) == 2)
            assert(select("#", l:nextmsg(0)) == 0)       -- b2 goes on: a timeout
            b2:addmsg(3)
            b2:finish()
            assert(l:nextmsg() == 3)
            assert(l:nextmsg() == mtmsg.EOS)
            local b3 = l:newbuffer()                     -- a new stream: not ended
            assert(select("#", l:nextmsg(0)) == 0)
            b3:finish()
            assert(l:nextmsg() == mtmsg.EOS)
            b1, b2, b3 = nil, nil, nil
            H.gc()
            checkerr("no_buffers", l.nextmsg, l, 0)
        end)
    end)

    describe("messages()", function()
        it("yields a count and each message's values until EOS", function()
            local b = mtmsg.newbuffer()
            b:addmsg(nil, "first nil"); b:addmsg(); b:addmsg(1, 2, 3)
            b:finish()
            local it, st, c = b:messages()
            same(pack(it(st, c)), { 1, nil, "first nil", n = 3 })
            same(pack(it(st, 1)), { 2 })                 -- the empty message
            same(pack(it(st, 2)), { 3, 1, 2, 3 })
            same(pack(it(st, 3)), {})                    -- EOS ends the loop
            b = mtmsg.newbuffer()
            b:addmsg(nil, "first nil"); b:addmsg(); b:addmsg(1, 2, 3)
            b:finish()
            local n = 0
            for i in b:messages() do n = i end
            assert(n == 3)
        end)

        it("ends at a timeout; listener:messages too", function()
            local b = mtmsg.newbuffer()
            b:addmsg("a")
            local n = 0
            for _, v in b:messages(0) do n = n + 1; assert(v == "a") end
            assert(n == 1)
            local l = mtmsg.newlistener()
            local b1, b2 = l:newbuffer(), l:newbuffer()
            b1:addmsg(1); b2:addmsg(2); b1:addmsg(3)
            b1:finish(); b2:finish()
            local got = {}
            for i, v in l:messages() do got[i] = v end
            got.n = #got
            same(got, { 1, 2, 3 })
            checkargerr(nil, b.messages, b, "x")
        end)

        it("a consumer thread reads a stream to its end", function()
            local b = mtmsg.newbuffer()
            b:setlimit(4)
            local t = thread.start(iter_consumer, b:id())
            for i = 1, 1000 do assert(b:waitaddmsg(nil, i)) end
            b:finish()
            same(ok(join(t)), { 1000, 500500, true })
            assert(b:highwater() <= 4)
        end)
    end)

    describe("introspection", function()
        it("peekmsg copies the next message and leaves it queued", function()
            local b = mtmsg.newbuffer()
            assert(select("#", b:peekmsg()) == 0)
            b:addmsg(1, "two"); b:addmsg(3)
            same(pack(b:peekmsg()), { 1, "two" })
            assert(b:msgcnt() == 2)
            same(pack(b:nextmsg()), { 1, "two" })
            assert(b:peekmsg() == 3 and b:nextmsg() == 3)
            b:finish()
            assert(b:peekmsg() == mtmsg.EOS)
            b:close()
            checkerr("object_closed", b.peekmsg, b)
        end)

        it("bytes, highwater and waitingsenders", function()
            local b = mtmsg.newbuffer(100, 0)
            same(pack(b:bytes()), { 0, 100, true })
            b:addmsg("hello", 7, true)                   -- a 12-byte frame
            same(pack(b:bytes()), { 12, 100, true })
            local g = mtmsg.newbuffer()
            local used, cap, fixed = g:bytes()
            assert(used == 0 and cap >= 0 and fixed == false)
            assert(b:highwater() == 1)
            b:addmsg(1); b:addmsg(2)
            assert(b:highwater() == 3)
            b:nextmsg(); b:nextmsg()
            assert(b:highwater(true) == 3)               -- reset to the current count
            assert(b:highwater() == 1)
            assert(b:waitingsenders() == 0)
        end)
    end)

    describe("C APIs", function()
        local ok_probe, probe = pcall(require, "capiprobe")
        it("a Receiver gets FULL on a full bounded buffer and CLOSED at end of stream", function()
            assert(ok_probe, probe)
            local b = mtmsg.newbuffer()
            b:setlimit(1)
            local ref = probe.ref(b)
            assert(ref:send({ { "int", 1 } }) == 0)
            assert(ref:send({ { "int", 2 } }) == 4)      -- RECEIVER_CAPI_RC_FULL
            assert(b:nextmsg() == 1)
            assert(ref:send({ { "int", 2 } }) == 0)
            b:finish()
            assert(ref:send({ { "int", 3 } }) == 1)      -- RECEIVER_CAPI_RC_CLOSED
            local rc, _, v = ref:recv(false, 0)
            assert(rc == 0 and v.n == 1)
            rc = ref:recv(false, 0)
            assert(rc == 1)                              -- SENDER_CAPI_RC_CLOSED: drained
        end)
    end)
end)
