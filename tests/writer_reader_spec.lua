-- Writers (build a message element by element, then add or set it atomically) and
-- readers (take a message atomically, then read its elements one by one or in groups).
local mtmsg = require "mtmsg"
local H = require "helpers"
local checkerr, checkargerr, pack, same = H.checkerr, H.checkargerr, H.pack, H.same

describe("writer", function()
    it("is an mtmsg.writer with a protected metatable", function()
        local w = mtmsg.newwriter()
        assert(mtmsg.type(w) == "mtmsg.writer")
        assert(getmetatable(w) == "mtmsg.writer")
        assert(mtmsg.type(mtmsg.newwriter(10)) == "mtmsg.writer")
        assert(mtmsg.type(mtmsg.newwriter(10, 0)) == "mtmsg.writer")
    end)

    it("builds one message from several add calls", function()
        local b = mtmsg.newbuffer()
        local w = mtmsg.newwriter()
        assert(select("#", w:add("foo1")) == 0)
        w:add("foo2", "foo3")
        w:add()
        w:add(nil, 4)
        assert(b:msgcnt() == 0)
        local r = pack(w:addmsg(b))
        same(r, { true })
        assert(b:msgcnt() == 1)
        same(pack(b:nextmsg(0)), { "foo1", "foo2", "foo3", nil, 4, n = 5 })
    end)

    it("is empty again after a successful addmsg", function()
        local b = mtmsg.newbuffer()
        local w = mtmsg.newwriter()
        w:add(1)
        assert(w:addmsg(b) == true)
        assert(w:addmsg(b) == true) -- an empty message
        same(pack(b:nextmsg(0)), { 1 })
        same(pack(b:nextmsg(0)), { n = 0 })
        assert(b:msgcnt() == 0)
        w:add(2)
        w:addmsg(b)
        same(pack(b:nextmsg(0)), { 2 })
    end)

    it("add(nil) adds one nil element", function()
        local b = mtmsg.newbuffer()
        local w = mtmsg.newwriter()
        w:add(nil)
        w:addmsg(b)
        same(pack(b:nextmsg(0)), { nil, n = 1 })
    end)

    it("setmsg replaces the messages of the buffer", function()
        local b = mtmsg.newbuffer()
        for i = 1, 5 do b:addmsg(i) end
        local w = mtmsg.newwriter()
        w:add("set", 1)
        same(pack(w:setmsg(b)), { true })
        assert(b:msgcnt() == 1)
        same(pack(b:nextmsg(0)), { "set", 1 })
        assert(w:addmsg(b) == true) -- the writer was emptied by setmsg
        same(pack(b:nextmsg(0)), { n = 0 })
    end)

    it("clear drops the elements", function()
        local b = mtmsg.newbuffer()
        local w = mtmsg.newwriter()
        w:add(1, 2, 3)
        w:clear()
        w:add("x")
        w:addmsg(b)
        same(pack(b:nextmsg(0)), { "x" })
    end)

    it("writes to listener buffers", function()
        local lst = mtmsg.newlistener()
        local b = lst:newbuffer()
        local w = mtmsg.newwriter()
        w:add("via", "listener")
        assert(w:addmsg(b) == true)
        same(pack(lst:nextmsg(0)), { "via", "listener" })
    end)

    it("respects a fixed size", function()
        local w = mtmsg.newwriter(8, 0)
        checkerr("message_size", function() w:add(string.rep("x", 100)) end)
        local w2 = mtmsg.newwriter(64, 0)
        w2:add("a")
        local b = mtmsg.newbuffer()
        assert(w2:addmsg(b) == true)
        assert(b:nextmsg(0) == "a")
    end)

    it("grows by default and with grow <= 1", function()
        local big = string.rep("z", 10000)
        for _, w in ipairs { mtmsg.newwriter(), mtmsg.newwriter(4), mtmsg.newwriter(4, 1),
                             mtmsg.newwriter(4, 0.5) } do
            local b = mtmsg.newbuffer()
            for i = 1, 10 do w:add(i, big) end
            assert(w:addmsg(b) == true)
            local r = pack(b:nextmsg(0))
            assert(r.n == 20 and r[19] == 10 and r[20] == big)
        end
    end)

    it("addmsg and setmsg raise on aborted and closed buffers", function()
        local b = mtmsg.newbuffer()
        local w = mtmsg.newwriter()
        w:add(1)
        b:abort()
        checkerr("operation_aborted", function() w:addmsg(b) end)
        checkerr("operation_aborted", function() w:setmsg(b) end)
        b:abort(false)
        b:close()
        checkerr("object_closed", function() w:addmsg(b) end)
        checkerr("object_closed", function() w:setmsg(b) end)
    end)

    it("addmsg and setmsg need a buffer", function()
        local w = mtmsg.newwriter()
        w:add(1)
        for _, v in ipairs { 1, "x", {}, true, mtmsg.newlistener(), mtmsg.newwriter(),
                             mtmsg.newreader() } do
            checkargerr(nil, function() w:addmsg(v) end)
            checkargerr(nil, function() w:setmsg(v) end)
        end
        checkargerr(nil, function() w:addmsg() end)
        checkargerr(nil, function() w:setmsg() end)
    end)

    it("newwriter('') is an argument error", function()
        checkargerr(nil, mtmsg.newwriter, "")
    end)
end)

describe("reader", function()
    it("is an mtmsg.reader with a protected metatable", function()
        local r = mtmsg.newreader()
        assert(mtmsg.type(r) == "mtmsg.reader")
        assert(getmetatable(r) == "mtmsg.reader")
        assert(mtmsg.type(mtmsg.newreader(10)) == "mtmsg.reader")
        assert(mtmsg.type(mtmsg.newreader(10, 0)) == "mtmsg.reader")
    end)

    it("next() returns one element, next(n) up to n", function()
        local b = mtmsg.newbuffer()
        b:addmsg("a", "b", "c", nil, true, 6)
        local r = mtmsg.newreader()
        same(pack(r:nextmsg(b)), { true })
        assert(b:msgcnt() == 0)
        same(pack(r:next()), { "a" })
        same(pack(r:next(2)), { "b", "c" })
        same(pack(r:next(1)), { nil, n = 1 })
        same(pack(r:next(10)), { true, 6 })
        same(pack(r:next()), { n = 0 })
        same(pack(r:next(5)), { n = 0 })
    end)

    it("works like nextmsg, as documented", function()
        local b = mtmsg.newbuffer()
        b:addmsg("x", "y", "z")
        local r = mtmsg.newreader()
        r:nextmsg(b)
        local a = r:next()
        local bb, c = r:next(2)
        assert(a == "x" and bb == "y" and c == "z")
    end)

    it("nextmsg discards what was left of the previous message", function()
        local b = mtmsg.newbuffer()
        b:addmsg(1, 2, 3)
        b:addmsg("new")
        local r = mtmsg.newreader()
        r:nextmsg(b)
        assert(r:next() == 1)
        r:nextmsg(b)
        same(pack(r:next(10)), { "new" })
    end)

    it("nextmsg of an empty message leaves the reader empty", function()
        local b = mtmsg.newbuffer()
        b:addmsg(1, 2)
        b:addmsg()
        local r = mtmsg.newreader()
        r:nextmsg(b)
        assert(r:nextmsg(b) == true)
        same(pack(r:next(10)), { n = 0 })
    end)

    it("clear drops the elements", function()
        local b = mtmsg.newbuffer()
        b:addmsg(1, 2, 3)
        local r = mtmsg.newreader()
        r:nextmsg(b)
        r:clear()
        same(pack(r:next()), { n = 0 })
    end)

    it("nextmsg returns false on timeout", function()
        local b = mtmsg.newbuffer()
        local r = mtmsg.newreader()
        same(pack(r:nextmsg(b, 0)), { false })
        local d, res = H.timed(r.nextmsg, r, b, 0.1)
        same(res, { false })
        assert(d >= 0.09 and d < 5, "nextmsg(b, 0.1) took " .. d)
    end)

    it("nextmsg returns false at once for a nonblock handle", function()
        local b = mtmsg.newbuffer()
        b:nonblock()
        local r = mtmsg.newreader()
        local d, res = H.timed(r.nextmsg, r, b)
        same(res, { false })
        assert(d < 5)
        b:addmsg(5)
        assert(r:nextmsg(b) == true)
        assert(r:next() == 5)
    end)

    it("reads from listeners", function()
        local lst = mtmsg.newlistener()
        local b1, b2 = lst:newbuffer(), lst:newbuffer()
        b1:addmsg(1); b1:addmsg(2); b2:addmsg(3)
        local r = mtmsg.newreader()
        local got = {}
        while r:nextmsg(lst, 0) do got[#got + 1] = r:next() end
        assert(table.concat(got, ",") == "1,3,2", table.concat(got, ","))
    end)

    it("nextmsg raises no_buffers, object_closed and operation_aborted", function()
        local r = mtmsg.newreader()
        local lst = mtmsg.newlistener()
        checkerr("no_buffers", function() r:nextmsg(lst, 0) end)
        checkerr("no_buffers", function() r:nextmsg(lst, 5) end)
        local b = mtmsg.newbuffer()
        b:abort()
        checkerr("operation_aborted", function() r:nextmsg(b, 0) end)
        b:abort(false)
        b:close()
        checkerr("object_closed", function() r:nextmsg(b, 0) end)
        local lb = lst:newbuffer()
        lst:abort()
        checkerr("operation_aborted", function() r:nextmsg(lst, 0) end)
        lst:abort(false)
        lst:close()
        checkerr("object_closed", function() r:nextmsg(lst, 0) end)
        assert(lb)
    end)

    it("respects a fixed size", function()
        local b = mtmsg.newbuffer()
        b:addmsg(string.rep("x", 100))
        local r = mtmsg.newreader(8, 0)
        checkerr("message_size", function() r:nextmsg(b, 0) end)
        b:clear()
        b:addmsg("a")
        local r2 = mtmsg.newreader(64, 0)
        assert(r2:nextmsg(b, 0) == true)
        assert(r2:next() == "a")
    end)

    it("grows by default and with grow <= 1", function()
        local big = string.rep("z", 10000)
        for _, r in ipairs { mtmsg.newreader(), mtmsg.newreader(4), mtmsg.newreader(4, 1),
                             mtmsg.newreader(4, 0.5) } do
            local b = mtmsg.newbuffer()
            b:addmsg(1, big, 2, big)
            assert(r:nextmsg(b, 0) == true)
            same(pack(r:next(4)), { 1, big, 2, big })
        end
    end)

    describe("argument errors", function()
        it("nextmsg needs a buffer or listener", function()
            local r = mtmsg.newreader()
            for _, v in ipairs { 1, "x", {}, true, mtmsg.newwriter(), mtmsg.newreader() } do
                checkargerr(nil, function() r:nextmsg(v, 0) end)
            end
            checkargerr(nil, function() r:nextmsg() end)
        end)

        it("nextmsg: timeout seconds expected", function()
            local r = mtmsg.newreader()
            local b = mtmsg.newbuffer()
            b:addmsg("stays")
            for _, v in ipairs { {}, true, "x" } do
                checkargerr("bad argument #2 to 'nextmsg' (timeout seconds expected)",
                            function() r:nextmsg(b, v) end)
            end
            assert(b:msgcnt() == 1)
        end)

        it("next: integer or carray expected, carray expected", function()
            local b = mtmsg.newbuffer()
            b:addmsg(1, 2, 3)
            local r = mtmsg.newreader()
            r:nextmsg(b)
            for _, v in ipairs { {}, true, "x" } do
                checkargerr("bad argument #1 to 'next' (integer or carray expected)",
                            function() r:next(v) end)
                checkargerr("bad argument #2 to 'next' (carray expected)",
                            function() r:next(1, v) end)
            end
            same(pack(r:next(5)), { 1, 2, 3 })
        end)

        it("buffer and listener nextmsg: timeout seconds or carray expected", function()
            local lst = mtmsg.newlistener()
            local b = lst:newbuffer()
            b:addmsg("stays")
            for _, o in ipairs { b, lst } do
                for _, v in ipairs { {}, true, "x" } do
                    checkargerr("bad argument #1 to 'nextmsg' (timeout seconds or carray expected)",
                                function() o:nextmsg(v) end)
                    checkargerr("bad argument #2 to 'nextmsg' (carray expected)",
                                function() o:nextmsg(0, v) end)
                    checkargerr("bad argument #2 to 'nextmsg' (carray expected)",
                                function() o:nextmsg(nil, v) end)
                end
            end
            assert(b:msgcnt() == 1, "a failed nextmsg took the message")
            assert(b:nextmsg(0) == "stays")
        end)
    end)
end)
