-- Notifier edge cases and error texts (issue 13, sections 3 and 4): long notifier chains are
-- freed without deep recursion, a failing "<" notifier loses no message, a buffer is not kept
-- alive by itself as its own notifier, aborted notifier buffers, argument errors, long names.
local mtmsg = require "mtmsg"
local probe = require "capiprobe"
local carray = require "carray"
local H = require "helpers"
local checkerr, checkargerr, pack = H.checkerr, H.checkargerr, H.pack

-- Runs f and returns the error it raised (asserting that it raised a plain string).
local function errof(f, ...)
    local ok, err = pcall(f, ...)
    assert(not ok, "expected an error")
    assert(type(err) == "string", "expected a string error")
    return err
end

-- Asserts an argument error with the text `why` (the position and function name in front
-- depend on the Lua version and the call: "bad argument #1 to 'mtmsg.buffer'").
local function checkarg(why, f, ...)
    local err = checkargerr(nil, f, ...)
    assert(err:sub(-(#why + 2)) == "(" .. why .. ")", "expected '" .. why .. "', got: " .. err)
end

local function findable(name)
    return (pcall(mtmsg.buffer, name))
end

-- Chain length: a million by default; the sanitizer scripts set MTMSG_CHAIN_N lower
-- (the old recursive free overflowed a 4 MiB stack at about 60 k). The join timeouts
-- below only guard against a hang: building the chain is slow under TSan.
local CHAIN_N = tonumber(os.getenv("MTMSG_CHAIN_N")) or 1000000
local CHAIN_JOIN = 30 * H.TIMEOUT

describe("notifier chains", function()
    it("a chain of " .. CHAIN_N .. " notifier buffers is freed in a 4 MiB thread stack", function()
        -- b[i]:notifier(b[i+1]); only the head keeps a handle at the end, so that its
        -- release frees the whole chain at once (on every Lua, whatever the finalizer order)
        local t = H.thread().start(function(n)
            local m = require "mtmsg"
            local head = m.newbuffer("hardening-chain-head")
            local prev = head
            for i = 2, n do
                local b = m.newbuffer(i == n and "hardening-chain-tail" or nil)
                prev:notifier(b)
                prev = b
            end
            prev = nil
            collectgarbage(); collectgarbage()
            local before = (pcall(m.buffer, "hardening-chain-tail"))
            head = nil
            collectgarbage(); collectgarbage()
            return before, (pcall(m.buffer, "hardening-chain-tail")),
                   (pcall(m.buffer, "hardening-chain-head"))
        end, CHAIN_N)
        local r = H.joinok(t, CHAIN_JOIN)
        assert(r[1] == true, "the tail is held by the chain while the head lives")
        assert(r[2] == false and r[3] == false, "the whole chain was freed")
    end)

    it("a long chain through listener buffers and an orphan is freed too", function()
        local t = H.thread().start(function(n)
            local m = require "mtmsg"
            local lst = m.newlistener()
            local head = lst:newbuffer("hardening-lchain-head")
            local prev = head
            for i = 2, n do
                local b = (i % 2 == 0) and lst:newbuffer() or m.newbuffer()
                prev:notifier(b, i % 3 == 0 and "<" or ">")
                prev = b
            end
            prev:addmsg("pending")               -- the tail stays with the listener
            prev = nil
            collectgarbage(); collectgarbage()
            head = nil
            collectgarbage(); collectgarbage()
            local v = lst:nextmsg(0)
            local ok, err = pcall(lst.nextmsg, lst, 0)
            return (pcall(m.buffer, "hardening-lchain-head")), v, ok, err
        end, math.min(CHAIN_N, 200000))
        local r = H.joinok(t, CHAIN_JOIN)
        assert(r[1] == false and r[2] == "pending" and r[3] == false)
        assert(r[4]:find("mtmsg.error.no_buffers", 1, true) == 1, r[4])
    end)
end)

describe('a failing "<" notifier', function()
    it("buffer:nextmsg raises; the handle keeps the message and returns it next", function()
        local b = mtmsg.newbuffer()
        local n = probe.newnotifier()
        b:notifier(n, "<")
        b:addmsg("first", 1, nil)
        b:addmsg("second")
        n:set(5, "boom")
        assert(errof(b.nextmsg, b, 0) == "Error while calling notifier: boom")
        assert(b:msgcnt() == 1 and n:count() == 1, "the message was taken, the notifier called")
        n:set(0)
        H.same(pack(b:nextmsg(0)), { n = 3, "first", 1, nil }, "held message")
        assert(n:count() == 1, "returning the held message calls no notifier")
        assert(b:nextmsg(0) == "second" and n:count() == 2)
        assert(select("#", b:nextmsg(0)) == 0)
    end)

    it("the held message comes first, without waiting, also after close", function()
        local b = mtmsg.newbuffer()
        local n = probe.newnotifier()
        b:notifier(n, "<")
        b:addmsg("h")
        b:addmsg("x")
        n:set(7)
        assert(errof(b.nextmsg, b) == "Unknown error while calling notifier. (rc=7)")
        n:set(0)
        local other = mtmsg.buffer(b:id())
        assert(other:nextmsg(0) == "x", "another handle does not see the held message")
        assert(b:nextmsg(H.TIMEOUT) == "h")      -- the buffer is empty: no wait
        b:addmsg()                               -- an empty message is held too
        b:addmsg("z")
        n:set(3, "again")
        errof(b.nextmsg, b)
        n:set(0)
        assert(select("#", b:nextmsg(0)) == 0 and b:msgcnt() == 1)
        assert(b:nextmsg(0) == "z")
        b:addmsg("y")
        n:set(3, "again")
        errof(b.nextmsg, b)
        n:set(0)
        b:close()
        assert(b:nextmsg() == "y", "taken before close: still returned")
        checkerr("object_closed", b.nextmsg, b, 0)
    end)

    it("listener:nextmsg keeps the message in the listener handle", function()
        local lst = mtmsg.newlistener()
        local lb, lb2 = lst:newbuffer(), lst:newbuffer()
        local n = probe.newnotifier()
        lb:notifier(n, "<")
        lb:addmsg("a", true)
        lb2:addmsg("b")
        n:set(9, "lst")
        assert(errof(lst.nextmsg, lst, 0) == "Error while calling notifier: lst")
        assert(lb:msgcnt() == 0)
        H.same(pack(lst:nextmsg(0)), { n = 2, "a", true }, "held message")
        assert(lst:nextmsg(0) == "b" and n:count() == 1)
        n:set(0)
    end)

    it("with carray arguments: the reuse list of the later call is used", function()
        for _, kind in ipairs { "buffer", "listener" } do
            local lst = mtmsg.newlistener()
            local b = lst:newbuffer()
            local src = kind == "buffer" and b or lst
            local n = probe.newnotifier()
            b:notifier(n, "<")
            b:addmsg(carray.new("int", { 1, 2, 3 }), "tail")
            n:set(4, kind)
            local a1 = carray.new("int", { 9 })
            assert(errof(src.nextmsg, src, a1) == "Error while calling notifier: " .. kind)
            local a2 = carray.new("int", { 8 })
            local r = pack(src:nextmsg(0, a2))
            assert(r.n == 2 and rawequal(r[1], a2) and r[2] == "tail", kind)
            assert(#a2 == 3 and a2:get(1) == 1 and a2:get(3) == 3, kind)
            b:addmsg(carray.new("short", { 5 }))
            errof(src.nextmsg, src)
            r = pack(src:nextmsg())              -- no reuse list: a new carray
            assert(r.n == 1 and r[1]:type() == "short" and r[1]:get(1) == 5, kind)
            n:set(0)
        end
    end)

    it("reader:nextmsg still keeps the message in the reader", function()
        local b = mtmsg.newbuffer()
        local n = probe.newnotifier()
        b:notifier(n, "<")
        b:addmsg("r")
        n:set(2, "rd")
        local r = mtmsg.newreader()
        assert(errof(r.nextmsg, r, b, 0) == "Error while calling notifier: rd")
        assert(r:next() == "r")
        n:set(0)
    end)
end)

describe("a buffer as its own notifier", function()
    it("is freed and unfindable once its handles are gone", function()
        for _, types in ipairs { { ">" }, { "<" }, { ">", "<" } } do
            local name = "hardening-self-" .. table.concat(types)
            do
                local b = mtmsg.newbuffer(name)
                for _, t in ipairs(types) do b:notifier(b, t) end
            end
            H.gc()
            assert(not findable(name), name .. " is still findable")
        end
    end)

    it("still notifies itself while it lives; disconnecting and closing are fine", function()
        local b = mtmsg.newbuffer("hardening-self-live")
        b:notifier(b, "<")
        b:addmsg(1)
        assert(b:nextmsg(0) == 1 and b:msgcnt() == 1)
        b:notifier(nil, "<")
        b:notifier(b, "<")
        b:close()
        b:notifier(nil, "<")
        b = nil
        H.gc()
        assert(not findable("hardening-self-live"))
    end)

    it("an orphaned listener buffer does not notify itself forever", function()
        local lst = mtmsg.newlistener()
        do
            local lb = lst:newbuffer()
            lb:notifier(lb, "<")
            lb:addmsg(1); lb:addmsg(2)
        end
        H.gc()
        assert(lst:nextmsg(0) == 1 and lst:nextmsg(0) == 2)
        checkerr("no_buffers", lst.nextmsg, lst, 0)
    end)

    it("rings of buffers keep each other until a link is disconnected", function()
        do
            local x = mtmsg.newbuffer("hardening-ring-x")
            local y = mtmsg.newbuffer("hardening-ring-y")
            x:notifier(y); y:notifier(x, "<")
        end
        H.gc()
        assert(findable("hardening-ring-x") and findable("hardening-ring-y"),
               "a ring holds its members, as documented")
        mtmsg.buffer("hardening-ring-x"):notifier(nil)
        H.gc()
        assert(not findable("hardening-ring-x") and not findable("hardening-ring-y"))
    end)
end)

describe("an aborted notifier buffer", function()
    it("raises operation_aborted naming the notifier; nothing is lost", function()
        local b = mtmsg.newbuffer()
        local other = mtmsg.newbuffer("hardening-aborted")
        local what = 'mtmsg.buffer(name="hardening-aborted",id=' .. other:id() .. ")"
        local text = "mtmsg.error.operation_aborted: notifier " .. what .. " is aborted"
        b:notifier(other, ">")
        b:notifier(other, "<")
        other:abort()
        assert(checkerr("operation_aborted", b.addmsg, b, "m") == text)
        assert(b:msgcnt() == 1, "the message was added")
        assert(checkerr("operation_aborted", b.nextmsg, b, 0) == text)
        assert(b:msgcnt() == 0)
        local rc, err = probe.ref(b):notify()
        assert(rc == 999 and err == text, tostring(err))
        rc, err = probe.ref(other):notify()
        assert(rc == 2 and err == "mtmsg.error.operation_aborted: " .. what, tostring(err))
        other:abort(false)
        assert(b:nextmsg(0) == "m", "the held message")
    end)
end)

describe("argument errors", function()
    it("mtmsg.buffer and mtmsg.listener want a name or an id", function()
        for _, f in ipairs { "buffer", "listener" } do
            for _, v in ipairs { true, {}, print } do
                checkarg(f .. " name or id expected, got " .. type(v), mtmsg[f], v)
            end
            checkarg(f .. " name or id expected, got nil", mtmsg[f], nil)
            checkarg(f .. " name or id expected, got no value", mtmsg[f])
            checkargerr(nil, mtmsg[f], 1.5)
            checkerr("unknown_object", mtmsg[f], 12345)
        end
    end)

    it("newbuffer(nil, size, grow): nil is no name, size and grow are honoured", function()
        local lst = mtmsg.newlistener()
        for _, b in ipairs { mtmsg.newbuffer(nil, 0, 0), lst:newbuffer(nil, 0, 0) } do
            assert(b:name() == nil)
            checkerr("message_size", b.addmsg, b, "x")   -- fixed at 0 bytes
        end
        local b = mtmsg.newbuffer(nil, 16, 0)
        checkerr("message_size", b.addmsg, b, ("x"):rep(100))
        b = mtmsg.newbuffer(nil)
        assert(b:name() == nil and b:addmsg(("x"):rep(5000)))
        b = mtmsg.newbuffer(nil, nil, 0)                  -- default size 1024, fixed
        checkerr("message_size", b.addmsg, b, ("x"):rep(2000))
        checkarg("buffer name or size expected, got boolean", mtmsg.newbuffer, true)
        checkarg("buffer name or size expected, got table", lst.newbuffer, lst, {})
        local w = mtmsg.newwriter(nil, 0)                 -- nil size: the default, fixed
        checkerr("message_size", w.add, w, ("x"):rep(2000))
        local l = mtmsg.newlistener(nil)
        assert(l:name() == nil)
    end)
end)

describe("long names in error texts", function()
    local function cut(name) return name:sub(1, 60) end

    it("are cut after 60 bytes, keeping the id; tostring keeps the whole name", function()
        local long = ("x"):rep(70000)
        local b = mtmsg.newbuffer(long)
        b:close()
        local err = checkerr("object_closed", b.addmsg, b, 1)
        assert(err == 'mtmsg.error.object_closed: mtmsg.buffer(name="' .. cut(long)
               .. '"...,id=' .. b:id() .. ")", err)
        assert(#tostring(b) > 70000 and tostring(b):find(long, 1, true))
        assert(b:name() == long)
        err = checkerr("unknown_object", mtmsg.buffer, ("y"):rep(70000))
        assert(err == 'mtmsg.error.unknown_object: buffer name "' .. ("y"):rep(60) .. '"...', err)
        local l = mtmsg.newlistener(long)
        err = checkerr("no_buffers", l.nextmsg, l, 0)
        assert(err == 'mtmsg.error.no_buffers: mtmsg.listener(name="' .. cut(long)
               .. '"...,id=' .. l:id() .. ")", err)
        local b2 = mtmsg.newbuffer(long)
        err = checkerr("ambiguous_name", mtmsg.buffer, long)
        assert(#err < 120, err)
        b2:close()
    end)

    it("names up to 64 bytes are shown whole; cuts respect UTF-8 and escapes", function()
        local n64 = ("n"):rep(64)
        local b = mtmsg.newbuffer(n64)
        b:close()
        assert(checkerr("object_closed", b.addmsg, b) == 'mtmsg.error.object_closed: '
               .. 'mtmsg.buffer(name="' .. n64 .. '",id=' .. b:id() .. ")")
        local utf = ("a"):rep(59) .. "\195\169" .. ("b"):rep(10)   -- é at bytes 60-61
        b = mtmsg.newbuffer(utf)
        b:close()
        assert(checkerr("object_closed", b.addmsg, b):find('name="' .. ("a"):rep(59)
               .. '"...,id=', 1, true))
        b = mtmsg.newbuffer(('"'):rep(100))
        b:close()
        assert(checkerr("object_closed", b.addmsg, b):find('name="' .. ('\\"'):rep(60)
               .. '"...,id=', 1, true))
    end)
end)
