-- Byte accounting: what a message costs against the size of a fixed buffer (grow 0),
-- writer or reader, and the figures in message_size errors. These must be the sizes of
-- mtmsg 0.4.3 on the same platform (docs/REFERENCE.md, "Message sizes"): each expected
-- size below is computed from the platform's sizeof values, reported by the C test
-- module capiprobe, so the spec holds on 32-bit builds too.
local mtmsg = require "mtmsg"
local H = require "helpers"
local probe = require "capiprobe"
local carray = require "carray"

local checkerr, pack = H.checkerr, H.pack

local SZ = probe.sizes()
local INT = 1 + SZ.integer                  -- an integer outside 0..255
local FLOAT = 1 + SZ.number                 -- a float (not an integral number before 5.3)
local PTR = 1 + SZ.ptr                      -- light userdata
local CFUNC = 1 + SZ.cfunction              -- C function
local function str(n) return (n <= 255 and 2 or 1 + SZ.size_t) + n end
local function array(count, elemsize) return 3 + SZ.size_t + count * elemsize end
local function header(n) return n < 255 and 1 or 1 + SZ.size_t end

-- The limit figure and the size figure of a message_size error (id and object checked
-- by the callers that care).
local function sizeerr(f, ...)
    local err = checkerr("message_size", f, ...)
    local size, limit = err:match("^mtmsg%.error%.message_size: message size (%d+) exceeds limit "
                                  .. "of (%d+) bytes for ")
    assert(size, "unexpected text: " .. err)
    return tonumber(size), tonumber(limit), err
end

-- An integral number is an integer on 5.1/5.2/LuaJIT if lua_Integer holds it.
local function integral(n)
    if H.has_integers then return FLOAT end          -- a float literal stays a float
    if SZ.integer >= 8 or (n >= -2 ^ 31 and n < 2 ^ 31) then
        return n >= 0 and n <= 255 and 2 or INT
    end
    return FLOAT
end

-- value, its size in bytes, a name for messages
local CASES = {
    { nil, 1, "nil" },
    { false, 2, "false" },
    { true, 2, "true" },
    { 0, 2, "0" },
    { 1, 2, "1" },
    { 255, 2, "255" },
    { 256, INT, "256" },
    { -1, INT, "-1" },
    { -256, INT, "-256" },
    { 2147483647, INT, "2^31-1" },
    { 1.5, FLOAT, "1.5" },
    { -0.25, FLOAT, "-0.25" },
    { math.huge, FLOAT, "inf" },
    { 1.0, integral(1), "1.0" },
    { 0.0, integral(0), "0.0" },
    { -0.0, integral(0), "-0.0" },
    { 2 ^ 53, integral(2 ^ 53), "2^53" },
    { "", str(0), "empty string" },
    { "x", str(1), "1-byte string" },
    { ("s"):rep(255), str(255), "255-byte string" },
    { ("l"):rep(256), str(256), "256-byte string" },
    { ("l"):rep(1000), str(1000), "1000-byte string" },
    { probe.lud(4096), PTR, "light userdata" },
    { probe.lud, CFUNC, "C function" },
    { carray.new("double", 3), array(3, 8), "carray of 3 doubles" },
    { carray.new("unsigned char", { 1, 2, 3, 4, 5 }), array(5, 1), "carray of 5 uchars" },
    { carray.new("int"), array(0, 4), "empty carray" },
}

local function same(a, b)
    if type(a) == "userdata" and type(b) == "userdata" and a ~= b then   -- carrays
        if #a ~= #b then return false end
        for i = 1, #a do if a:get(i) ~= b:get(i) then return false end end
        return true
    end
    if type(a) == "function" and type(b) == "function" then   -- a new closure on 5.1
        return probe.cfaddr(a) == probe.cfaddr(b)
    end
    if a ~= a then return b ~= b end
    if a == 0 and b == 0 then return 1 / a == 1 / b end       -- the sign of zero
    return a == b
end

describe("byte accounting", function()
    describe("the cases of mtmsg 0.4.3's own tests", function()
        it("newbuffer(name, 4, 0): 1 + 3 bytes fit, 5 raise, full gives false", function()
            local b = mtmsg.newbuffer("hugo", 4, 0)
            assert(b:addmsg("1") == true)
            local size, limit, err = sizeerr(b.addmsg, b, "m2")
            assert(size == 5 and limit == 4, err)
            assert(err == 'mtmsg.error.message_size: message size 5 exceeds limit of 4 bytes '
                          .. 'for mtmsg.buffer(name="hugo",id=' .. b:id() .. ')', err)
            assert(b:addmsg("2") == false)
            assert(b:msgcnt() == 1)
            assert(b:nextmsg(0) == "1")
            assert(b:addmsg("2") == true)
            assert(b:nextmsg(0) == "2")
        end)

        it("newwriter(4, 0): a second add of a 3-byte value raises with size 6", function()
            local w = mtmsg.newwriter(4, 0)
            w:add("1")
            local size, limit, err = sizeerr(w.add, w, "1")
            assert(size == 6 and limit == 4, err)
            assert(err == "mtmsg.error.message_size: message size 6 exceeds limit of 4 bytes "
                          .. "for mtmsg.writer", err)
            local b = mtmsg.newbuffer()
            assert(w:addmsg(b) == true)                  -- the first value was kept
            same(pack(b:nextmsg(0)), pack("1"))
            assert(select("#", b:nextmsg(0)) == 0)
        end)

        it("newreader(4, 0): a 6-byte message raises message_size and stays queued", function()
            local b = mtmsg.newbuffer()
            b:addmsg("1", "2")
            local r = mtmsg.newreader(4, 0)
            local size, limit, err = sizeerr(r.nextmsg, r, b, 0)
            assert(size == 6 and limit == 4, err)
            assert(err == "mtmsg.error.message_size: message size 6 exceeds limit of 4 bytes "
                          .. "for mtmsg.reader", err)
            assert(b:msgcnt() == 1)
            local r6 = mtmsg.newreader(6, 0)
            assert(r6:nextmsg(b, 0) == true)
            assert(r6:next() == "1" and r6:next() == "2")
        end)
    end)

    describe("every element kind at its size", function()
        for _, c in ipairs(CASES) do
            local v, n, name = c[1], c[2], c[3]
            it(name .. " takes " .. n .. " bytes", function()
                local need = header(n) + n
                -- a buffer of exactly the message's size takes it, and then is full
                local b = mtmsg.newbuffer(need, 0)
                assert(b:addmsg(v) == true, name)
                assert(b:addmsg(v) == false, name)
                assert(b:setmsg(v) == true and b:msgcnt() == 1, name)
                -- one byte less: can never fit
                local small = mtmsg.newbuffer(need - 1, 0)
                local size, limit = sizeerr(small.addmsg, small, v)
                assert(size == need and limit == need - 1, name .. ": " .. size .. "/" .. limit)
                size = sizeerr(small.setmsg, small, v)
                assert(size == need and small:msgcnt() == 0, name)
                -- writers count the element only
                local w = mtmsg.newwriter(n, 0)
                w:add(v)
                local w1 = mtmsg.newwriter(n - 1, 0)
                size, limit = sizeerr(w1.add, w1, v)
                assert(size == n and limit == n - 1, name)
                -- and so do readers
                local r1 = mtmsg.newreader(n - 1, 0)
                size, limit = sizeerr(r1.nextmsg, r1, b, 0)
                assert(size == n and limit == n - 1 and b:msgcnt() == 1, name)
                local r = mtmsg.newreader(n, 0)
                assert(r:nextmsg(b, 0) == true, name)
                local got = pack(r:next())
                assert(got.n == 1 and same(got[1], v), name)
                -- the value arrives intact through the buffer too
                assert(w:addmsg(b) == true, name)
                got = pack(b:nextmsg(0))
                assert(got.n == 1 and same(got[1], v), name)
            end)
        end

        it("values add up, and the header grows from 1 byte at 255 element bytes", function()
            -- strings of 252 and 253 bytes: elements of 254 and 255 bytes
            for _, k in ipairs({ 252, 253 }) do
                local n = str(k)
                local need = header(n) + n
                assert(mtmsg.newbuffer(need, 0):addmsg(("h"):rep(k)) == true)
                local size = sizeerr(mtmsg.newbuffer(need - 1, 0).addmsg,
                                     mtmsg.newbuffer(need - 1, 0), ("h"):rep(k))
                assert(size == need)
            end
            assert(header(str(252)) == 1 and header(str(253)) == 1 + SZ.size_t)
            -- many small elements: 127 booleans (254 bytes), then 128 (256 bytes)
            local t = {}
            for i = 1, 128 do t[i] = true end
            local b = mtmsg.newbuffer(255, 0)
            assert(b:addmsg(H.unpack(t, 1, 127)) == true)
            local size = sizeerr(b.setmsg, b, H.unpack(t, 1, 128))
            assert(size == 256 + 1 + SZ.size_t)
            -- a mixed message
            local vals = { nil, 7, 300, "abc", 2.5, false }
            local n = 1 + 2 + INT + 5 + FLOAT + 2
            assert(mtmsg.newbuffer(n + 1, 0):addmsg(H.unpack(vals, 1, 6)) == true)
            assert(sizeerr(mtmsg.newbuffer(n, 0).addmsg, mtmsg.newbuffer(n, 0),
                           H.unpack(vals, 1, 6)) == n + 1)
            -- an empty message is its header
            local e = mtmsg.newbuffer(1, 0)
            assert(e:addmsg() == true and e:addmsg() == false)
            assert(sizeerr(mtmsg.newbuffer(0, 0).addmsg, mtmsg.newbuffer(0, 0)) == 1)
        end)

        it("a buffer sized for N messages takes exactly N", function()
            local b = mtmsg.newbuffer(10 * 4, 0)             -- ("1") costs 4 bytes
            for _ = 1, 10 do assert(b:addmsg("1") == true) end
            assert(b:addmsg("1") == false)
            assert(b:nextmsg(0) == "1")
            assert(b:addmsg("1") == true and b:addmsg("1") == false)
            assert(b:msgcnt() == 10)
            local m = mtmsg.newbuffer(3 * (1 + 2 + INT), 0)  -- (i, 1000 + i)
            for i = 1, 3 do assert(m:addmsg(i, 1000 + i) == true) end
            assert(m:addmsg(0, 0) == false)                  -- 1 + 2 + 2 bytes: still no room
        end)
    end)

    describe("every way into and out of a fixed size", function()
        it("listener buffers count like standalone ones", function()
            local lst = mtmsg.newlistener()
            local b = lst:newbuffer("lhugo", 4, 0)
            assert(b:addmsg("1") == true)
            local size, limit, err = sizeerr(b.addmsg, b, "m2")
            assert(size == 5 and limit == 4, err)
            assert(err:find('for mtmsg.buffer(name="lhugo",id=' .. b:id() .. ")", 1, true), err)
            assert(b:addmsg("2") == false)
            assert(lst:nextmsg(0) == "1")
            assert(b:addmsg("2") == true)
            local r = mtmsg.newreader(2, 0)
            assert(sizeerr(r.nextmsg, r, lst, 0) == 3)
            assert(b:msgcnt() == 1)
            local r3 = mtmsg.newreader(3, 0)
            assert(r3:nextmsg(lst, 0) == true and r3:next() == "2")
        end)

        it("setmsg fits when the message alone fits", function()
            local b = mtmsg.newbuffer("s8", 8, 0)
            assert(b:addmsg("1") and b:addmsg("1"))
            assert(b:addmsg("1") == false)
            assert(b:setmsg("abcde") == true and b:msgcnt() == 1)   -- 1 + 7
            local size, limit = sizeerr(b.setmsg, b, "abcdef")
            assert(size == 9 and limit == 8)
            assert(b:msgcnt() == 1 and b:nextmsg(0) == "abcde")
        end)

        it("writer:addmsg and writer:setmsg count header plus elements", function()
            local b = mtmsg.newbuffer("w4", 4, 0)
            local w = mtmsg.newwriter()
            w:add("1")
            assert(w:addmsg(b) == true)
            w:add("2")
            assert(w:addmsg(b) == false)                      -- full now: kept
            assert(b:nextmsg(0) == "1")
            assert(w:addmsg(b) == true and b:msgcnt() == 1)
            w:add("m2")
            local size, limit, err = sizeerr(w.addmsg, w, b)
            assert(size == 5 and limit == 4, err)
            assert(err:find('for mtmsg.buffer(name="w4",id=', 1, true), err)
            size = sizeerr(w.setmsg, w, b)
            assert(size == 5 and b:msgcnt() == 1)
            w:clear()
            w:add("3")
            assert(w:setmsg(b) == true and b:msgcnt() == 1 and b:nextmsg(0) == "3")
        end)

        it("the C APIs count the same", function()
            local b = mtmsg.newbuffer(4, 0)
            local ref = probe.ref(b)
            local w = probe.newwriter(b)
            assert(w:add("str", "1") == 0)
            assert(w:send(ref) == 0)
            assert(w:add("str", "2") == 0)
            assert(w:send(ref) == 4)                          -- full now
            w:clear()
            assert(w:add("str", "m2") == 0)
            assert(w:send(ref) == 5)                          -- never
            -- fixed writers: element sizes
            local big = mtmsg.newbuffer()
            local function fits(cap, kind, ...)
                local fw = probe.newwriter(big, cap, 0)
                local rc = fw:add(kind, ...)
                return rc == 0 or rc == true
            end
            for _, c in ipairs({ { 2, "bool", true }, { 2, "int", 255 }, { INT, "int", 256 },
                                 { INT, "int", -1 }, { FLOAT, "num", 0.5 },
                                 { str(3), "str", "abc" }, { str(300), "str", ("z"):rep(300) },
                                 { 10, "bytes", "\0\1\127\128\255" },
                                 { array(2, 8), "array", "double", { 1, 2 } } }) do
                local n = c[1]
                assert(fits(n, H.unpack(c, 2, 4)), c[2] .. " in " .. n)
                assert(not fits(n - 1, H.unpack(c, 2, 4)), c[2] .. " in " .. (n - 1))
            end
            -- fixed readers: element sizes
            big:addmsg(1, 2)
            assert(probe.newreader(big, 3, 0):recv(probe.ref(big)) == 4)
            assert(big:msgcnt() == 1)
            assert(probe.newreader(big, 4, 0):recv(probe.ref(big)) == 0)
        end)
    end)
end)

describe("a writer whose message was stored", function()
    local function failing()
        local n = probe.newnotifier()
        n:set(5, "boom")
        return n
    end

    it("is empty even when the buffer's notifier fails (addmsg)", function()
        local b = mtmsg.newbuffer()
        local n = failing()
        b:notifier(n)
        local w = mtmsg.newwriter()
        w:add("once")
        local ok, err = pcall(w.addmsg, w, b)
        assert(not ok and tostring(err):find("boom", 1, true), tostring(err))
        assert(b:msgcnt() == 1)
        n:set(0)
        assert(w:addmsg(b) == true)                        -- the natural retry
        assert(b:msgcnt() == 2)
        assert(b:nextmsg(0) == "once")
        assert(select("#", b:nextmsg(0)) == 0, "the message was stored twice")
    end)

    it("is empty even when the buffer's notifier fails (setmsg)", function()
        local b = mtmsg.newbuffer()
        local n = failing()
        b:notifier(n)
        local w = mtmsg.newwriter()
        w:add("once", 2)
        assert(not pcall(w.setmsg, w, b))
        assert(b:msgcnt() == 1)
        w:add("next")
        n:set(0)
        assert(w:setmsg(b) == true)
        local same_values = pack(b:nextmsg(0))
        assert(same_values.n == 1 and same_values[1] == "next")
    end)

    it("keeps its values when nothing was stored", function()
        local b = mtmsg.newbuffer(4, 0)
        local w = mtmsg.newwriter()
        b:addmsg("1")
        w:add("2")
        assert(w:addmsg(b) == false)
        b:nextmsg(0)
        assert(w:addmsg(b) == true and b:nextmsg(0) == "2")
    end)
end)

-- Asking malloc for 1 PiB must fail cleanly (not under ASan without allocator_may_return_null).
local maps = io.open("/proc/self/maps")
local asan = maps and maps:read("*a"):find("asan") ~= nil
if maps then maps:close() end
if not asan or (os.getenv("ASAN_OPTIONS") or ""):find("allocator_may_return_null=1") then
    describe("out_of_memory", function()
        local PIB = 2 ^ 50
        -- A size beyond the address space counts as the largest one (32-bit: 2^32 - 1).
        local failed = math.min(PIB, 2 ^ (8 * SZ.size_t) - 1)
        local text = ("mtmsg.error.out_of_memory: failed to allocate %.0f bytes"):format(failed)

        it("names the allocation that failed: buffer", function()
            local b = mtmsg.newbuffer(PIB, 0)
            local err = checkerr("out_of_memory", b.addmsg, b, 1)
            assert(err == text, err)
            err = checkerr("out_of_memory", b.setmsg, b, 1)
            assert(err == text, err)
            local w = mtmsg.newwriter()
            w:add(1)
            err = checkerr("out_of_memory", w.addmsg, w, b)
            assert(err == text, err)
            assert(b:msgcnt() == 0)
            local l = mtmsg.newlistener():newbuffer(PIB)       -- growing: same first size
            err = checkerr("out_of_memory", l.addmsg, l, "x")
            assert(err == text, err)
        end)

        it("names the allocation that failed: writer and reader", function()
            local w = mtmsg.newwriter(PIB, 0)
            local err = checkerr("out_of_memory", w.add, w, 1)
            assert(err == text, err)
            local b = mtmsg.newbuffer()
            b:addmsg("kept")
            local r = mtmsg.newreader(PIB)
            err = checkerr("out_of_memory", r.nextmsg, r, b, 0)
            assert(err == text, err)
            assert(b:msgcnt() == 1 and b:nextmsg(0) == "kept")
        end)
    end)
end
