-- Tests of the test-only carray provider (tests/mod/carray.c) on its own, before mtmsg uses it.
local carray = require "carray"

local is53 = math.type ~= nil -- Lua 5.3+: integer/float subtypes

local TYPES = {
    -- name, code, integral, min, max (values that every type of that name can hold)
    {"unsigned char",      1,  true,  0,    255},
    {"signed char",        2,  true,  -128, 127},
    {"short",              3,  true,  -32768, 32767},
    {"unsigned short",     4,  true,  0,    65535},
    {"int",                5,  true,  -2147483648, 2147483647},
    {"unsigned int",       6,  true,  0,    4294967295},
    {"long",               7,  true,  -2147483648, 2147483647},
    {"unsigned long",      8,  true,  0,    4294967295},
    {"float",              9,  false, -1.5, 2.25},
    {"double",             10, false, -1e300, 0.1},
    {"long long",          11, true,  -2^53, 2^53},
    {"unsigned long long", 12, true,  0,    2^53},
}

local function rawmt(v) return debug.getmetatable(v) end

describe("carray provider", function()

    it("creates zeroed arrays of every type", function()
        for _, t in ipairs(TYPES) do
            local a = carray.new(t[1], 3)
            assert.equals(t[1], a:type())
            assert.equals(3, a:len())
            assert.equals(3, #a)
            assert.is_false(a:isreadonly())
            for i = 1, 3 do assert.equals(0, a:get(i)) end
            local e = carray.new(t[1])
            assert.equals(0, #e)
        end
    end)

    it("rejects unknown type names and negative counts", function()
        assert.has_error(function() carray.new("char", 1) end)
        assert.has_error(function() carray.new("int", -1) end)
        assert.has_error(function() carray.new() end)
    end)

    it("stores and reads back values of every type", function()
        for _, t in ipairs(TYPES) do
            local a = carray.new(t[1], 2)
            a:set(1, t[4], t[5])
            assert.equals(t[4], a:get(1))
            assert.equals(t[5], a:get(2))
            local x, y = a:get(1, 2)
            assert.equals(t[4], x)
            assert.equals(t[5], y)
        end
    end)

    it("keeps the integer/float subtype on Lua 5.3+", function()
        if not is53 then return end
        for _, t in ipairs(TYPES) do
            local a = carray.new(t[1], {1})
            assert.equals(t[3] and "integer" or "float", math.type(a:get(1)))
        end
        local l = carray.new("long long", {math.maxinteger, math.mininteger})
        assert.equals(math.maxinteger, l:get(1))
        assert.equals(math.mininteger, l:get(2))
    end)

    it("converts like C: wraps integers, rounds floats", function()
        local u = carray.new("unsigned char", {256 + 7, -1})
        assert.equals(7, u:get(1))
        assert.equals(255, u:get(2))
        local f = carray.new("float", {0.1})
        assert.is_not.equals(0.1, f:get(1))
        assert.is_true(math.abs(f:get(1) - 0.1) < 1e-7)
        local i = carray.new("int", 1)
        assert.has_error(function() i:set(1, 1.5) end)
        assert.has_error(function() i:set(1, "x") end)
    end)

    it("checks index ranges", function()
        local a = carray.new("int", {1, 2, 3})
        assert.has_error(function() a:get(0) end)
        assert.has_error(function() a:get(4) end)
        assert.has_error(function() a:get(1, 4) end)
        assert.has_error(function() a:set(0, 1) end)
        assert.has_error(function() a:set(3, 1, 2) end)
        assert.has_error(function() a:set(4, 1) end)
        assert.same({}, {a:get(3, 2)})
        a:set(2, 20, 30)
        assert.same({1, 20, 30}, {a:get(1, 3)})
    end)

    it("appends and changes the length", function()
        local a = carray.new("double")
        a:append(1.5, 2.5)
        a:append()
        a:append(3.5)
        assert.equals(3, #a)
        assert.same({1.5, 2.5, 3.5}, {a:get(1, 3)})
        assert.is_true(a:capacity() >= 3)
        a:setlen(1)
        assert.equals(1, #a)
        a:setlen(4)
        assert.same({1.5, 0, 0, 0}, {a:get(1, 4)})
        a:setlen(0)
        assert.equals(0, a:len())
        assert.has_error(function() a:setlen(-1) end)
        assert.has_error(function() a:append("x") end)
        assert.equals(0, a:len())
    end)

    it("makes read-only arrays", function()
        local r = carray.new("int", "readonly", 2)
        assert.is_true(r:isreadonly())
        assert.same({0, 0}, {r:get(1, 2)})
        local v = carray.new("short", "readonly", {5, -6})
        assert.same({5, -6}, {v:get(1, 2)})
        assert.has_error(function() v:set(1, 1) end)
        assert.has_error(function() v:append(1) end)
        assert.has_error(function() v:setlen(0) end)
        assert.equals(2, #v)
        local d = carray.new("int", "default", {1})
        assert.is_false(d:isreadonly())
        assert.has_error(function() carray.new("int", "frozen", 1) end)
    end)

    it("has methods, __len, __tostring and a protected metatable", function()
        local a = carray.new("unsigned short", 2)
        assert.equals("carray", getmetatable(a))
        assert.matches("^carray: .*unsigned short%[2%]", tostring(a))
        assert.has_error(function() a.len(nil) end)
        assert.has_error(function() a.len(carray.newnoapi()) end)
    end)

    it("publishes the API marker in the array metatable", function()
        local a = carray.new("int")
        local mt = rawmt(a)
        assert.equals("userdata", type(rawget(mt, "_capi_carray")))
        assert.equals(mt, rawmt(carray.new("double", 1)))
        local M, m, p = carray.lookup(a)
        assert.equals(1, M); assert.equals(0, m); assert.equals(0, p)
    end)

    it("publishes the API marker in the module table's metatable", function()
        local mt = rawmt(carray)
        assert.equals("userdata", type(rawget(mt, "_capi_carray")))
        assert.equals(1, (carray.lookup(carray)))
        assert.is_nil(carray.info(carray))
    end)

    it("reports version mismatch and missing APIs", function()
        local bad = carray.newbadversion("int", {4, 5})
        assert.equals("userdata", type(rawget(rawmt(bad), "_capi_carray")))
        local x, reason = carray.lookup(bad)
        assert.is_nil(x); assert.equals(1, reason)
        assert.same({4, 5}, {bad:get(1, 2)})   -- usable from Lua
        assert.is_nil(carray.info(bad))         -- but not through the 1.0 API
        local n = carray.newnoapi()
        assert.is_nil(rawget(rawmt(n), "_capi_carray"))
        for _, v in ipairs({n, 1, "s", {}, true, print}) do
            x, reason = carray.lookup(v)
            assert.is_nil(x); assert.equals(2, reason)
            assert.is_nil(carray.info(v))
        end
        x, reason = carray.lookup(nil)
        assert.is_nil(x); assert.equals(2, reason)
        for _, kind in ipairs({"string", "light", "short", "key", "table"}) do
            x, reason = carray.lookup(carray.newbadmarker(kind))
            assert.is_nil(x); assert.equals(2, reason)
        end
        assert.has_error(function() carray.newbadmarker("other") end)
    end)

    it("follows next_capi chains", function()
        local c = carray.newchained("float", {1.5})
        assert.equals(1, (carray.lookup(c)))
        local info = carray.info(c)
        assert.equals(9, info.type)
        assert.equals(1.5, c:get(1))
    end)

    it("fills carray_info", function()
        for _, t in ipairs(TYPES) do
            local a = carray.new(t[1], 3)
            local info = carray.info(a)
            assert.equals(t[2], info.type)
            assert.equals(0, info.attr)
            assert.equals(3, info.elementCount)
            assert.equals(3, info.elementCapacity)
            assert.is_true(info.writable)
            assert.equals(0, info.writableCapacity)
        end
        assert.equals(4, carray.info(carray.new("int")).elementSize)
        assert.equals(8, carray.info(carray.new("double")).elementSize)
        assert.equals(1, carray.info(carray.new("unsigned char")).elementSize)
        local r = carray.info(carray.new("int", "readonly", 1))
        assert.equals(1, r.attr)
        assert.is_false(r.writable)
        assert.is_nil(r.writableCapacity)
    end)

    it("makes reference arrays released through the callback", function()
        local before = carray.refreleases()
        do
            local r = carray.newref("int", 3)
            r:set(1, 7, 8, 9)
            assert.same({7, 8, 9}, {r:get(1, 3)})
            assert.has_error(function() r:append(1) end)
            assert.has_error(function() r:setlen(1) end)
            local ro = carray.newref("double", 2, "readonly")
            assert.is_true(ro:isreadonly())
            assert.is_false(carray.info(ro).writable)
        end
        collectgarbage(); collectgarbage()
        assert.equals(before + 2, carray.refreleases())
    end)

    it("passes the C API self test", function()
        assert.is_true(carray.selftest())
        assert.is_true(carray.selftest())
    end)

    it("survives garbage collection of many arrays", function()
        for i = 1, 1000 do
            local a = carray.new("long", i % 7)
            a:append(i)
        end
        collectgarbage(); collectgarbage()
    end)
end)
