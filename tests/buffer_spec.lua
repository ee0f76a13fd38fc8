-- Buffer objects: construction, every method, identity (tostring, metatable), fixed-size
-- and growing buffers, close, abort and the per-handle nonblock flag.
local mtmsg = require "mtmsg"
local H = require "helpers"
local checkerr, checkargerr, pack, same = H.checkerr, H.checkargerr, H.pack, H.same

-- Fills a fixed-size buffer with msg until addmsg returns false; returns the count.
local function fill(b, msg)
    local n = 0
    for _ = 1, 10000 do
        local r = b:addmsg(msg)
        if r == false then return n end
        assert(r == true, "addmsg returned " .. tostring(r))
        n = n + 1
    end
    error("fixed-size buffer never got full")
end

describe("buffer", function()
    describe("construction", function()
        it("newbuffer() returns an unnamed buffer", function()
            local b = mtmsg.newbuffer()
            assert(mtmsg.type(b) == "mtmsg.buffer")
            assert(select("#", b:name()) == 0, "name() of an unnamed buffer returned values")
        end)

        it("takes a string first argument as the name", function()
            assert(mtmsg.newbuffer("n1"):name() == "n1")
            assert(mtmsg.newbuffer("n2", 100):name() == "n2")
            assert(mtmsg.newbuffer("n3", 100, 0):name() == "n3")
            assert(mtmsg.newbuffer("n4", 100, 1.5):name() == "n4")
            assert(select("#", mtmsg.newbuffer(100):name()) == 0)
            assert(select("#", mtmsg.newbuffer(100, 0):name()) == 0)
        end)

        it("has a protected metatable", function()
            local b = mtmsg.newbuffer()
            assert(getmetatable(b) == "mtmsg.buffer")
        end)

        it("id() is an integer shared by all handles", function()
            local b = mtmsg.newbuffer("ids")
            local id = b:id()
            assert(type(id) == "number" and id % 1 == 0)
            if math.type then assert(math.type(id) == "integer") end
            assert(mtmsg.buffer(id):id() == id)
            assert(mtmsg.buffer("ids"):id() == id)
            assert(mtmsg.newbuffer():id() ~= id)
        end)

        it("tostring shows the id", function()
            local b = mtmsg.newbuffer()
            local s = tostring(b)
            assert(s:match("^mtmsg%.buffer: 0x%x+ %(id=" .. b:id() .. "%)$"), s)
        end)

        it("tostring shows the name, escaped", function()
            local b = mtmsg.newbuffer("plain")
            local s = tostring(b)
            assert(s:match('^mtmsg%.buffer: 0x%x+ %(name="plain",id=' .. b:id() .. "%)$"), s)
            b = mtmsg.newbuffer('x"y\\z')
            s = tostring(b)
            local tail = '(name="x\\"y\\\\z",id=' .. b:id() .. ")"
            assert(s:sub(-#tail) == tail, s)
            assert(s:match("^mtmsg%.buffer: 0x%x+ %("), s)
            b = mtmsg.newbuffer("a\0b")
            s = tostring(b)
            assert(not s:find("\0", 1, true), "NUL not escaped in " .. s)
            assert(s:match('%(name="a\\[^"]*b",id=' .. b:id() .. "%)$"), s)
        end)
    end)

    describe("messages", function()
        it("addmsg returns true and nextmsg returns the values in FIFO order", function()
            local b = mtmsg.newbuffer()
            assert(b:addmsg(1, "a") == true)
            assert(b:addmsg(2, "b", true) == true)
            assert(b:addmsg() == true)
            assert(b:msgcnt() == 3)
            same(pack(b:nextmsg()), { 1, "a" })
            assert(b:msgcnt() == 2)
            same(pack(b:nextmsg()), { 2, "b", true })
            same(pack(b:nextmsg()), { n = 0 })
            assert(b:msgcnt() == 0)
        end)

        it("all handles share the messages", function()
            local b = mtmsg.newbuffer("shared-msgs")
            local b2 = mtmsg.buffer(b:id())
            local b3 = mtmsg.buffer("shared-msgs")
            b:addmsg("x")
            b2:addmsg("y")
            assert(b3:msgcnt() == 2)
            assert(b3:nextmsg(0) == "x")
            assert(b:nextmsg(0) == "y")
        end)

        it("setmsg discards the other messages", function()
            local b = mtmsg.newbuffer()
            for i = 1, 5 do b:addmsg(i) end
            assert(b:setmsg("only", 1) == true)
            assert(b:msgcnt() == 1)
            same(pack(b:nextmsg(0)), { "only", 1 })
            same(pack(b:nextmsg(0)), { n = 0 })
            assert(b:setmsg("again") == true)
            assert(b:msgcnt() == 1)
        end)

        it("clear removes all messages and returns true", function()
            local b = mtmsg.newbuffer()
            for i = 1, 5 do b:addmsg(i) end
            assert(b:clear() == true)
            assert(b:msgcnt() == 0)
            same(pack(b:nextmsg(0)), { n = 0 })
            assert(b:addmsg("after") == true)
            assert(b:nextmsg(0) == "after")
        end)

        it("msgcnt follows add, next, set and clear", function()
            local b = mtmsg.newbuffer()
            assert(b:msgcnt() == 0)
            for i = 1, 100 do b:addmsg(i) end
            assert(b:msgcnt() == 100)
            for _ = 1, 40 do b:nextmsg() end
            assert(b:msgcnt() == 60)
            b:setmsg(1)
            assert(b:msgcnt() == 1)
            b:clear()
            assert(b:msgcnt() == 0)
        end)

        it("keeps many messages in order through growth", function()
            local b = mtmsg.newbuffer(16)
            for i = 1, 10000 do assert(b:addmsg(i, tostring(i)) == true) end
            for i = 1, 10000 do
                local a, s = b:nextmsg(0)
                assert(a == i and s == tostring(i))
            end
            same(pack(b:nextmsg(0)), { n = 0 })
        end)

        it("timeouts return zero values", function()
            local b = mtmsg.newbuffer()
            same(pack(b:nextmsg(0)), { n = 0 })
            local d, r = H.timed(b.nextmsg, b, 0.1)
            same(r, { n = 0 })
            assert(d >= 0.09 and d < 5, "nextmsg(0.1) took " .. d)
            same(pack(b:nextmsg(0.01)), { n = 0 })
        end)

        it("nextmsg(timeout) returns a waiting message at once", function()
            local b = mtmsg.newbuffer()
            b:addmsg("here")
            local d, r = H.timed(b.nextmsg, b, 30)
            same(r, { "here" })
            assert(d < 5)
        end)

        it("methods return the documented number of values", function()
            local b = mtmsg.newbuffer()
            assert(select("#", b:addmsg(1)) == 1)
            assert(select("#", b:setmsg(1)) == 1)
            assert(select("#", b:clear()) == 1)
            assert(select("#", b:nonblock()) == 0)
            assert(select("#", b:nonblock(false)) == 0)
            assert(select("#", b:abort()) == 0)
            assert(select("#", b:abort(false)) == 0)
            assert(select("#", b:close()) == 0)
        end)
    end)

    describe("nonblock", function()
        it("is a flag of the handle, not of the buffer", function()
            local b = mtmsg.newbuffer("nb")
            local b2 = mtmsg.buffer(b:id())
            assert(b:isnonblock() == false)
            b2:nonblock()
            assert(b2:isnonblock() == true)
            assert(b:isnonblock() == false)
            assert(mtmsg.buffer("nb"):isnonblock() == false)
            b2:nonblock(false)
            assert(b2:isnonblock() == false)
            b2:nonblock(true)
            assert(b2:isnonblock() == true)
        end)

        it("nextmsg() without timeout returns at once when empty", function()
            local b = mtmsg.newbuffer()
            b:nonblock()
            local d, r = H.timed(b.nextmsg, b)
            same(r, { n = 0 })
            assert(d < 5)
            b:addmsg("x")
            same(pack(b:nextmsg()), { "x" })
            b:nonblock(false)
            b:addmsg("y")
            same(pack(b:nextmsg()), { "y" })
        end)

        it("rejects non-boolean flags", function()
            local b = mtmsg.newbuffer()
            for _, v in ipairs { 1, 0, "true", {} } do
                checkargerr(nil, function() b:nonblock(v) end)
            end
            assert(b:isnonblock() == false)
        end)
    end)

    describe("abort", function()
        it("aborts the buffer for every handle until abort(false)", function()
            local b = mtmsg.newbuffer()
            local b2 = mtmsg.buffer(b:id())
            b:addmsg("kept")
            assert(b:isabort() == false)
            b:abort()
            assert(b:isabort() == true)
            assert(b2:isabort() == true)
            local err = checkerr("operation_aborted", function() b:addmsg(1) end)
            assert(err == "mtmsg.error.operation_aborted", err)
            checkerr("operation_aborted", function() b2:addmsg(1) end)
            checkerr("operation_aborted", function() b:setmsg(1) end)
            checkerr("operation_aborted", function() b2:nextmsg(0) end)
            checkerr("operation_aborted", function() b:nextmsg(5) end)
            b2:abort(false)
            assert(b:isabort() == false)
            assert(b:nextmsg(0) == "kept")
            assert(b:addmsg(2) == true)
            assert(b2:nextmsg(0) == 2)
            b:abort(true)
            assert(b2:isabort() == true)
            b:abort(false)
        end)

        it("does not affect other buffers", function()
            local b1, b2 = mtmsg.newbuffer(), mtmsg.newbuffer()
            b1:abort()
            assert(b2:isabort() == false)
            assert(b2:addmsg(1) == true)
            assert(mtmsg.isabort() == false)
        end)

        it("rejects non-boolean flags", function()
            local b = mtmsg.newbuffer()
            for _, v in ipairs { 1, 0, "true", {} } do
                checkargerr(nil, function() b:abort(v) end)
            end
            assert(b:isabort() == false)
        end)
    end)

    describe("close", function()
        it("makes every operation of every handle raise object_closed", function()
            local b = mtmsg.newbuffer("c")
            local b2 = mtmsg.buffer(b:id())
            b:addmsg(1)
            b:addmsg(2)
            b:close()
            local err = checkerr("object_closed", function() b:addmsg(1) end)
            assert(err == 'mtmsg.error.object_closed: mtmsg.buffer(name="c",id=' .. b:id() .. ")",
                   err)
            for _, h in ipairs { b, b2 } do
                checkerr("object_closed", function() h:addmsg(1) end)
                checkerr("object_closed", function() h:setmsg(1) end)
                checkerr("object_closed", function() h:nextmsg(0) end)
                checkerr("object_closed", function() h:nextmsg(5) end)
                checkerr("object_closed", function() h:clear() end)
                checkerr("object_closed", function() h:nonblock() end)
            end
        end)

        it("names an unnamed buffer by id in the error", function()
            local b = mtmsg.newbuffer()
            b:close()
            local err = checkerr("object_closed", function() b:addmsg(1) end)
            assert(err == "mtmsg.error.object_closed: mtmsg.buffer(id=" .. b:id() .. ")", err)
        end)

        it("leaves msgcnt at 0", function()
            local b = mtmsg.newbuffer()
            for i = 1, 3 do b:addmsg(i) end
            b:close()
            assert(b:msgcnt() == 0)
        end)

        it("leaves tostring working", function()
            local b = mtmsg.newbuffer("closed-ts")
            b:close()
            local s = tostring(b)
            assert(s:match('^mtmsg%.buffer: 0x%x+ %(name="closed%-ts",id=' .. b:id() .. "%)$"),
                   s)
        end)

        it("also rejects writer and reader operations", function()
            local b = mtmsg.newbuffer()
            b:close()
            local w, r = mtmsg.newwriter(), mtmsg.newreader()
            w:add(1)
            checkerr("object_closed", function() w:addmsg(b) end)
            checkerr("object_closed", function() w:setmsg(b) end)
            checkerr("object_closed", function() r:nextmsg(b, 0) end)
        end)
    end)

    describe("fixed size (grow 0)", function()
        it("addmsg returns false when full and fits again after a read", function()
            local b = mtmsg.newbuffer(64, 0)
            local n = fill(b, "abc")
            assert(n >= 1, "not even one message fits in 64 bytes")
            assert(b:msgcnt() == n)
            assert(b:addmsg("abc") == false)
            assert(b:msgcnt() == n)
            assert(b:nextmsg(0) == "abc")
            assert(b:addmsg("abc") == true)
            assert(b:msgcnt() == n)
            assert(b:addmsg("abc") == false)
            for _ = 1, n do assert(b:nextmsg(0) == "abc") end
            same(pack(b:nextmsg(0)), { n = 0 })
        end)

        it("setmsg replaces the content of a full buffer", function()
            local b = mtmsg.newbuffer(64, 0)
            fill(b, "abc")
            assert(b:setmsg("abc") == true)
            assert(b:msgcnt() == 1)
        end)

        it("a message that can never fit raises message_size and stores nothing", function()
            local b = mtmsg.newbuffer("small", 4, 0)
            local err = checkerr("message_size", function() b:addmsg("12345") end)
            local size, limit, id = err:match("^mtmsg%.error%.message_size: message size (%d+) "
                .. 'exceeds limit of (%d+) bytes for mtmsg%.buffer%(name="small",id=(%d+)%)$')
            assert(size, "unexpected text: " .. err)
            assert(tonumber(limit) == 4, err)
            assert(tonumber(size) > 4, err)
            assert(tonumber(id) == b:id(), err)
            checkerr("message_size", function() b:setmsg("12345") end)
            assert(b:msgcnt() == 0)
        end)

        it("message_size wins over false when the buffer is not empty", function()
            local b = mtmsg.newbuffer(64, 0)
            fill(b, "abc")
            local n = b:msgcnt()
            checkerr("message_size", function() b:addmsg(string.rep("x", 200)) end)
            assert(b:msgcnt() == n)
        end)

        it("newbuffer(0, 0) is fixed at zero bytes", function()
            local b = mtmsg.newbuffer(0, 0)
            checkerr("message_size", function() b:addmsg("x") end)
            assert(b:msgcnt() == 0)
        end)

        it("negative size or grow count as 0", function()
            local b = mtmsg.newbuffer(-10, 0)
            checkerr("message_size", function() b:addmsg("x") end)
            b = mtmsg.newbuffer(64, -1)
            checkerr("message_size", function() b:addmsg(string.rep("x", 200)) end)
            b = mtmsg.newbuffer(-10) -- size 0, default growth
            assert(b:addmsg(string.rep("x", 200)) == true)
            assert(b:nextmsg(0) == string.rep("x", 200))
        end)

        it("writer:addmsg returns false when full and keeps the elements", function()
            local b = mtmsg.newbuffer(64, 0)
            local n = fill(b, "abc")
            local w = mtmsg.newwriter()
            w:add("abc")
            assert(w:addmsg(b) == false)
            assert(b:msgcnt() == n)
            b:nextmsg(0)
            assert(w:addmsg(b) == true)
            assert(b:msgcnt() == n)
        end)
    end)

    -- Asking malloc for 1 PiB (more than any address space) must fail cleanly. Not under
    -- AddressSanitizer, which aborts on such a request unless allocator_may_return_null=1.
    local maps = io.open("/proc/self/maps")
    local asan = maps and maps:read("*a"):find("asan") ~= nil
    if maps then maps:close() end
    if not asan or (os.getenv("ASAN_OPTIONS") or ""):find("allocator_may_return_null=1") then
        it("a buffer that cannot get its memory raises out_of_memory", function()
            local b = mtmsg.newbuffer(2 ^ 50, 0)
            local err = checkerr("out_of_memory", function() b:addmsg("x") end)
            assert(err:match("^mtmsg%.error%.out_of_memory: failed to allocate %d+ bytes$"), err)
            assert(b:msgcnt() == 0)
        end)
    end

    describe("growing", function()
        local big = string.rep("y", 100000)

        it("the default buffer grows beyond 1024 bytes", function()
            local b = mtmsg.newbuffer()
            assert(b:addmsg(big) == true)
            assert(b:addmsg(big, big) == true)
            assert(b:nextmsg(0) == big)
            local x, y = b:nextmsg(0)
            assert(x == big and y == big)
        end)

        for _, grow in ipairs { 2, 1.5, 1, 0.5 } do
            it("grow " .. grow .. " fits any message", function()
                local b = mtmsg.newbuffer(16, grow)
                for i = 1, 20 do assert(b:addmsg(i, big) == true) end
                for i = 1, 20 do
                    local a, s = b:nextmsg(0)
                    assert(a == i and s == big)
                end
            end)
        end
    end)
end)
