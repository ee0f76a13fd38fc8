-- The takers' batch (docs/DESIGN.md, "The takers' batch"): a taker that finds several
-- messages queued in a standalone buffer moves them all into the batch at once and
-- takes the next ones from there without the producers' lock. Nothing of it may show:
-- a buffer whose older messages sit in the batch counts, peeks, clears, closes, limits,
-- notifies, wakes and ends exactly as one that holds them all in its queue.
--
-- batched(): a buffer holding 2..5, 2 and 3 in the batch (three messages were queued
-- when 1 was taken) and 4 and 5 in the queue. Every test below also runs on a plain
-- buffer holding 2..5 that never had a batch ("fresh"): the same results are expected.
local mtmsg = require "mtmsg"
local H = require "helpers"
local checkerr, checkargerr, pack, same = H.checkerr, H.checkargerr, H.pack, H.same
local T = H.TIMEOUT
local WINDOWS = package.config:sub(1, 1) == "\\"

local function batched(b)
    b = b or mtmsg.newbuffer()
    b:addmsg(1); b:addmsg(2); b:addmsg(3)
    assert(b:nextmsg(0) == 1)
    b:addmsg(4); b:addmsg(5)
    return b
end

local function fresh(b)
    b = b or mtmsg.newbuffer()
    for i = 2, 5 do b:addmsg(i) end
    return b
end

-- Takes everything (nextmsg(0)) from b, up to nothing or mtmsg.EOS; returns the list.
local function drain(b)
    local got = {}
    while true do
        local v = b:nextmsg(0)
        if v == nil or v == mtmsg.EOS then return got end
        got[#got + 1] = v
    end
end

local function list(t) return table.concat(t, ",") end

for _, make in ipairs({ { "batch", batched }, { "fresh", fresh } }) do
    local kind, new = make[1], make[2]

    describe("2..5 queued (" .. kind .. ")", function()
        after_each(function() mtmsg.abort(false) end)

        it("are taken in order, and counted, peeked and measured as one queue", function()
            local b = new()
            assert(b:msgcnt() == 4)
            assert(b:peekmsg() == 2)
            local used = b:bytes()
            assert(used == select(1, fresh():bytes()), "bytes() used " .. used)
            b:addmsg(6)
            assert(b:msgcnt() == 5)
            assert(list(drain(b)) == "2,3,4,5,6")
            assert(b:msgcnt() == 0 and b:bytes() == 0)
            same(pack(b:nextmsg(0)), { n = 0 })
        end)

        it("highwater counts them all", function()
            local b = new()
            b:addmsg(6)
            assert(b:highwater() == 5)
            assert(b:nextmsg(0) == 2)
            assert(b:highwater(true) == 5)          -- reset to the current count
            assert(b:highwater() == 4)
        end)

        it("clear and setmsg drop them all", function()
            local b = new()
            assert(b:clear() == true)
            assert(b:msgcnt() == 0)
            same(pack(b:nextmsg(0)), { n = 0 })
            b = new()
            assert(b:setmsg("only") == true)
            assert(b:msgcnt() == 1)
            assert(list(drain(b)) == "only")
            b = new()
            local w = mtmsg.newwriter()
            w:add("w")
            assert(w:setmsg(b) == true)                 -- writer:setmsg clears too
            assert(list(drain(b)) == "w")
        end)

        it("close drops them, abort hides them until abort(false)", function()
            local b = new()
            b:close()
            checkerr("object_closed", b.nextmsg, b, 0)
            assert(b:msgcnt() == 0)
            b = new()
            b:abort(true)
            checkerr("operation_aborted", b.nextmsg, b, 0)
            checkerr("operation_aborted", b.peekmsg, b)
            b:abort(false)
            assert(list(drain(b)) == "2,3,4,5")
        end)

        it("a count limit counts them all", function()
            local b = new()
            local err = checkargerr(nil, b.setlimit, b, 3)
            assert(err:find("(message count limit 3 is below the 4 messages queued)", 1, true), err)
            b:setlimit(4)
            assert(b:addmsg(6) == false)                -- full
            assert(b:waitaddmsg(0, 6) == false)
            assert(b:nextmsg(0) == 2)
            assert(b:addmsg(6) == true)
            assert(b:addmsg(7) == false)
            b:setlimit(nil)
            assert(b:addmsg(7) == true)
            assert(list(drain(b)) == "3,4,5,6,7")
        end)

        it("finish: all of them, then mtmsg.EOS", function()
            local b = new()
            b:finish()
            checkerr("stream_ended", b.addmsg, b, 6)
            assert(list(drain(b)) == "2,3,4,5")      -- (drain stops at mtmsg.EOS)
            assert(b:nextmsg(0) == mtmsg.EOS and b:peekmsg() == mtmsg.EOS)
        end)

        it("a '<' notifier hears of every take, and only then", function()
            local b, n = new(), mtmsg.newbuffer()
            b:notifier(n, "<")
            assert(list(drain(b)) == "2,3,4,5")
            assert(n:msgcnt() == 4, "notified " .. n:msgcnt() .. " times")
            b:notifier(nil, "<")
            fresh(b)
            assert(b:nextmsg(0) == 2)
            assert(n:msgcnt() == 4)
        end)

        it("a nonblocking handle takes them in order", function()
            local b = new()
            local nb = mtmsg.buffer(b:id())
            nb:nonblock(true)
            assert(nb:nextmsg() == 2 and b:nextmsg() == 3 and nb:nextmsg() == 4)
            assert(nb:clear() == true)
            assert(nb:msgcnt() == 0)
        end)

        it("the messages() iterator and a reader take them in order", function()
            local b = new()
            b:finish()
            local got = {}
            for _, v in b:messages(0) do got[#got + 1] = v end
            assert(list(got) == "2,3,4,5")
            b = new()
            local r = mtmsg.newreader()
            local got2 = {}
            while r:nextmsg(b, 0) do got2[#got2 + 1] = r:next() end
            assert(list(got2) == "2,3,4,5")
        end)

        if not WINDOWS then
            it("a wake-up descriptor opened now is readable exactly while they last", function()
                local readable = require("fdprobe").readable
                local b = new()
                local fd = b:getfd()
                assert(readable(fd) == true)
                assert(list(drain(b)) == "2,3,4,5")
                assert(readable(fd) == false)
                b:addmsg(1); b:addmsg(2); b:addmsg(3)
                assert(b:nextmsg(0) == 1)               -- would have made a batch
                assert(readable(fd) == true)
                assert(list(drain(b)) == "2,3")
                assert(readable(fd) == false)
            end)
        end

        it("a Sender C API take and a clearing Receiver C API send see them all", function()
            local probe = require "capiprobe"
            local b = new()
            local ref = probe.ref(b)
            local rc, _, values = ref:recv(true)
            assert(rc == 0 and values[1].v == 2, "recv rc " .. tostring(rc))
            assert(ref:send({ { "int", 9 } }, true) == 0)    -- clear, then add
            assert(list(drain(b)) == "9")
        end)
    end)
end

describe("the takers' batch", function()
    after_each(function() mtmsg.abort(false) end)

    it("a listener buffer keeps its order whoever takes (listener buffers have no batch)", function()
        local l = mtmsg.newlistener()
        local b = l:newbuffer()
        b:addmsg(1); b:addmsg(2); b:addmsg(3)
        assert(b:nextmsg(0) == 1)
        b:addmsg(4)
        assert(l:nextmsg(0) == 2 and b:nextmsg(0) == 3 and l:nextmsg(0) == 4)
        same(pack(l:nextmsg(0)), { n = 0 })
    end)

    it("the storage of a big backlog does not stay allocated twice", function()
        local b, s = mtmsg.newbuffer(), string.rep("x", 1000)
        for _ = 1, 20000 do b:addmsg(s) end              -- about 20 MB queued
        local _, cap0 = b:bytes()
        assert(cap0 >= 20000000, cap0)
        assert(b:nextmsg(0) == s)                       -- the backlog becomes the batch
        for _ = 1, 20000 do b:addmsg(s) end              -- and the queue grows as big
        b:addmsg("new")
        local got = drain(b)
        assert(#got == 40000 and got[40000] == "new")
        b:addmsg(1); b:addmsg(2); b:addmsg(3)           -- small traffic again: a new batch
        assert(b:nextmsg(0) == 1)
        local used, cap = b:bytes()
        assert(used > 0 and cap < 2 * cap0 and cap <= cap0 + 1024 * 1024,
               cap .. " bytes allocated, the backlog took " .. cap0)
    end)

    it("a fixed-size buffer never has one: its size is its limit, once", function()
        local b = mtmsg.newbuffer(30, 0)
        for i = 1, 3 do assert(b:addmsg(i) == true) end
        assert(b:nextmsg(0) == 1)
        local used, cap, fixed = b:bytes()
        assert(cap == 30 and fixed == true, cap)
        while b:addmsg(0) do end                       -- fill it up
        assert(select(1, b:bytes()) <= 30)
        assert(b:nextmsg(0) == 2 and b:nextmsg(0) == 3)
        assert(used > 0)
    end)

    it("close, clear and abort from another thread while takers use the batch", function()
        local thread = H.thread()
        local function taker(id)
            local mtmsg = require "mtmsg"
            local b, n = mtmsg.buffer(id), 0
            while true do
                local ok, v = pcall(b.nextmsg, b, 10)
                if not ok then
                    if v:find("^mtmsg%.error%.object_closed") then return n end
                    if not v:find("^mtmsg%.error%.operation_aborted") then error(v) end
                elseif v == nil then
                    return "timeout"
                else
                    n = n + 1
                end
            end
        end
        for round = 1, 20 do
            local b = mtmsg.newbuffer()
            local ts = { thread.start(taker, b:id()), thread.start(taker, b:id()) }
            for i = 1, 2000 do
                b:addmsg(i)
                if i % 500 == 0 then b:clear() end
                if i % 700 == 0 then b:abort(true); b:abort(false) end
            end
            b:close()
            for _, t in ipairs(ts) do
                local r = H.joinok(t)
                assert(type(r[1]) == "number", "round " .. round .. ": " .. tostring(r[1]))
            end
        end
    end)
end)
