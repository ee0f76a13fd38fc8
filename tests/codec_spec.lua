-- Message encoding: every supported element type survives the trip through a buffer
-- unchanged (value, integer/float subtype, sign of zero, NaN, binary strings), message
-- arity is kept exactly, and unsupported types are rejected with an exact argument error.
local mtmsg = require "mtmsg"
local H = require "helpers"
local checkargerr, pack, unpack = H.checkargerr, H.pack, H.unpack

-- An integer-subtype number on 5.3+, the plain number elsewhere.
local function int(x)
    return math.tointeger and math.tointeger(x) or x
end
-- A float-subtype number everywhere.
local function flt(x)
    return x + 0.0
end

local negzero = -1 / math.huge
local nan = 0 / 0

-- Round-trip cases: { label, value }.
local cases = {
    { "nil", nil }, { "true", true }, { "false", false },
    { "0", int(0) }, { "-0.0", negzero }, { "0.0", flt(0) }, { "NaN", nan },
    { "inf", math.huge }, { "-inf", -math.huge },
    { "0.5", 0.5 }, { "-1.25", -1.25 }, { "pi", math.pi }, { "1e300", 1e300 },
    { "-1e-300", -1e-300 }, { "denormal", 5e-324 }, { "1.0", flt(1) },
    { "2^53 float", 2 ^ 53 }, { "2^63 float", 2 ^ 63 }, { "-2^63 float", -(2 ^ 63) },
    { "1e15 float", flt(1e15) },
    { "empty string", "" }, { "a", "a" }, { "NUL", "\0" }, { "a\\0b", "a\0b" },
    { "255 bytes", string.rep("x", 255) }, { "256 bytes", string.rep("y", 256) },
    { "65535 bytes", string.rep("z", 65535) }, { "65536 bytes", string.rep("w", 65536) },
    { "65537 bytes", string.rep("v", 65537) },
}
for _, x in ipairs { 1, -1, 127, 128, -128, -129, 255, 256, 32767, 32768, -32768, -32769,
                     65535, 65536, 2 ^ 31 - 1, 2 ^ 31, -(2 ^ 31), -(2 ^ 31) - 1, 2 ^ 32,
                     2 ^ 53, -(2 ^ 53), 123456789012 } do
    cases[#cases + 1] = { "integer " .. string.format("%.0f", x), int(x) }
end
if math.maxinteger then
    cases[#cases + 1] = { "maxinteger", math.maxinteger }
    cases[#cases + 1] = { "mininteger", math.mininteger }
    cases[#cases + 1] = { "maxinteger-1", math.maxinteger - 1 }
    cases[#cases + 1] = { "mininteger+1", math.mininteger + 1 }
end
do
    local t = {}
    for i = 0, 255 do t[#t + 1] = string.char(i) end
    local all = table.concat(t)
    cases[#cases + 1] = { "all byte values", all }
    cases[#cases + 1] = { "all byte values x 300", string.rep(all, 300) }
end

-- Asserts that got is the same element as want (NaN, -0.0 and the subtype included).
local function check_same(label, got, want)
    if want ~= want then
        assert(got ~= got, label .. ": NaN came back as " .. tostring(got))
        return
    end
    assert(got == want, label .. ": got " .. tostring(got) .. " (" .. type(got) .. ")")
    if type(want) == "number" then
        if want == 0 then
            assert(1 / got == 1 / want, label .. ": sign of zero lost")
        end
        if math.type then
            assert(math.type(got) == math.type(want),
                   label .. ": subtype " .. math.type(want) .. " came back as "
                   .. math.type(got))
        end
    end
end

-- Asserts that the packed results r equal the packed message m element by element.
local function check_msg(label, r, m)
    assert(r.n == m.n, label .. ": " .. m.n .. " values sent, " .. r.n .. " received")
    for i = 1, m.n do check_same(label .. " #" .. i, r[i], m[i]) end
end

-- Sends the packed message m through buffer b in each of the ways a message can travel
-- and checks what comes out.
local function roundtrips(label, m)
    local b = mtmsg.newbuffer()
    assert(b:addmsg(unpack(m, 1, m.n)) == true)
    check_msg(label .. " addmsg/nextmsg", pack(b:nextmsg(0)), m)

    assert(b:setmsg(unpack(m, 1, m.n)) == true)
    check_msg(label .. " setmsg/nextmsg", pack(b:nextmsg(0)), m)

    local w, r = mtmsg.newwriter(), mtmsg.newreader()
    w:add(unpack(m, 1, m.n))
    assert(w:addmsg(b) == true)
    assert(r:nextmsg(b, 0) == true)
    check_msg(label .. " writer/reader", pack(r:next(m.n + 1)), m)

    local lst = mtmsg.newlistener()
    local lb = lst:newbuffer()
    lb:addmsg(unpack(m, 1, m.n))
    check_msg(label .. " listener", pack(lst:nextmsg(0)), m)
end

describe("codec", function()
    describe("round trip of a single element", function()
        for _, c in ipairs(cases) do
            it(c[1], function()
                roundtrips(c[1], pack(c[2]))
            end)
        end
    end)

    it("round trip of all elements in one message", function()
        local m = { n = #cases }
        for i, c in ipairs(cases) do m[i] = c[2] end
        roundtrips("all", m)
    end)

    it("keeps the integer/float subtype on 5.3+", function()
        local b = mtmsg.newbuffer()
        b:addmsg(int(1), flt(1), 2 ^ 53, int(2 ^ 53))
        local a, f, p, q = b:nextmsg(0)
        assert(a == 1 and f == 1 and p == 2 ^ 53 and q == 2 ^ 53)
        if math.type then
            assert(math.type(a) == "integer")
            assert(math.type(f) == "float")
            assert(math.type(p) == "float")
            assert(math.type(q) == "integer")
        end
    end)

    describe("message arity", function()
        it("addmsg() delivers zero values", function()
            roundtrips("empty", pack())
            local b = mtmsg.newbuffer()
            b:addmsg()
            assert(b:msgcnt() == 1)
            assert(select("#", b:nextmsg(0)) == 0)
            assert(b:msgcnt() == 0)
        end)

        it("addmsg(nil) delivers exactly one nil", function()
            local b = mtmsg.newbuffer()
            b:addmsg(nil)
            local r = pack(b:nextmsg(0))
            assert(r.n == 1 and r[1] == nil)
        end)

        it("keeps trailing nils", function()
            local b = mtmsg.newbuffer()
            b:addmsg(1, nil)
            b:addmsg(nil, nil, nil)
            b:addmsg(nil, 2, nil, nil)
            H.same(pack(b:nextmsg(0)), { 1, nil, n = 2 })
            H.same(pack(b:nextmsg(0)), { nil, nil, nil, n = 3 })
            H.same(pack(b:nextmsg(0)), { nil, 2, nil, nil, n = 4 })
        end)

        it("carries 100000-element messages (writer and reader)", function()
            local n = 100000
            local b = mtmsg.newbuffer()
            local w = mtmsg.newwriter()
            for i = 1, n do w:add(i) end
            assert(w:addmsg(b) == true)
            local r = mtmsg.newreader()
            assert(r:nextmsg(b, 0) == true)
            for i = 1, n do
                local v = r:next()
                assert(v == i, "element " .. i .. " is " .. tostring(v))
            end
            assert(select("#", r:next()) == 0)
        end)

        it("carries 100000-element messages in chunks", function()
            local b = mtmsg.newbuffer()
            local w = mtmsg.newwriter()
            local t = {}
            for i = 1, 5000 do t[i] = i end
            for _ = 1, 20 do w:add(unpack(t, 1, 5000)) end
            assert(w:addmsg(b) == true)
            local r = mtmsg.newreader()
            assert(r:nextmsg(b, 0) == true)
            for _ = 1, 20 do
                local got = pack(r:next(5000))
                assert(got.n == 5000)
                for i = 1, 5000 do assert(got[i] == i) end
            end
            assert(select("#", r:next(5000)) == 0)
        end)

        -- Lua 5.1 and LuaJIT cannot pass 100000 arguments to a C function at all.
        local t = {}
        for i = 1, 100000 do t[i] = i end
        if pcall(function() return select("#", unpack(t, 1, 100000)) end) then
            it("carries 100000-element messages through addmsg/nextmsg", function()
                local b = mtmsg.newbuffer()
                assert(b:addmsg(unpack(t, 1, 100000)) == true)
                local r = pack(b:nextmsg(0))
                assert(r.n == 100000)
                for i = 1, 100000 do assert(r[i] == i) end
                local lst = mtmsg.newlistener()
                local lb = lst:newbuffer()
                lb:addmsg(unpack(t, 1, 100000))
                r = pack(lst:nextmsg(0))
                assert(r.n == 100000 and r[100000] == 100000)
            end)
        end
    end)

    it("carries a 16 MiB string", function()
        local s = string.rep("abcdefgh\0\255\1\2\3\4\5\6", 2 ^ 20)
        assert(#s == 16 * 2 ^ 20)
        local b = mtmsg.newbuffer()
        assert(b:addmsg(1, s, 2) == true)
        local x, y, z = b:nextmsg(0)
        assert(x == 1 and z == 2)
        assert(y == s, "16 MiB string changed")
        local w, r = mtmsg.newwriter(), mtmsg.newreader()
        w:add(s)
        w:addmsg(b)
        r:nextmsg(b, 0)
        assert(r:next() == s)
    end)

    it("carries C functions", function()
        local b = mtmsg.newbuffer()
        b:addmsg(os.getenv, mtmsg.time)
        local f, g = b:nextmsg(0)
        assert(type(f) == "function" and type(g) == "function")
        assert(f("PATH") == os.getenv("PATH"))
        assert(type(g()) == "number")
        if _VERSION ~= "Lua 5.1" then -- light C functions compare by address
            assert(f == os.getenv)
        end
    end)

    -- Pure Lua can only get hold of a light userdata through debug.upvalueid (5.2+, LuaJIT).
    if debug.upvalueid then
        it("carries light userdata", function()
            local up = 0
            local lud = debug.upvalueid(function() return up end, 1)
            assert(type(lud) == "userdata")
            roundtrips("light userdata", pack(lud))
            roundtrips("light userdata among others", pack(1, lud, "x"))
        end)
    end

    describe("unsupported types", function()
        local bad = {
            -- plain tables are message elements now (tables_spec.lua)
            { "Lua function", function() end },
            { "coroutine", coroutine.create(function() end) },
            { "full userdata", io.stdout },
            { "mtmsg buffer", mtmsg.newbuffer() },
            { "mtmsg writer", mtmsg.newwriter() },
        }
        if newproxy then bad[#bad + 1] = { "newproxy userdata", newproxy(true) } end

        local function msg(n, fname)
            return "bad argument #" .. n .. " to '" .. fname .. "' (parameter type not supported)"
        end

        for _, c in ipairs(bad) do
            local v = c[2]
            it(c[1] .. " is rejected by addmsg at its position, nothing stored", function()
                local b = mtmsg.newbuffer()
                b:addmsg("first")
                checkargerr(msg(1, "addmsg"), function() b:addmsg(v) end)
                checkargerr(msg(2, "addmsg"), function() b:addmsg(1, v) end)
                checkargerr(msg(3, "addmsg"), function() b:addmsg(1, nil, v) end)
                checkargerr(msg(4, "addmsg"), function() b:addmsg(1, 2, "x", v, 5) end)
                assert(b:msgcnt() == 1)
                assert(b:nextmsg(0) == "first")
                assert(select("#", b:nextmsg(0)) == 0)
            end)

            it(c[1] .. " is rejected by setmsg, old messages kept", function()
                local b = mtmsg.newbuffer()
                b:addmsg("first")
                b:addmsg("second")
                checkargerr(msg(1, "setmsg"), function() b:setmsg(v) end)
                checkargerr(msg(3, "setmsg"), function() b:setmsg(1, 2, v) end)
                assert(b:msgcnt() == 2)
                assert(b:nextmsg(0) == "first")
            end)

            it(c[1] .. " is rejected by writer:add, nothing added", function()
                local w = mtmsg.newwriter()
                w:add("kept")
                checkargerr(msg(1, "add"), function() w:add(v) end)
                checkargerr(msg(2, "add"), function() w:add(1, v) end)
                local b = mtmsg.newbuffer()
                assert(w:addmsg(b) == true)
                H.same(pack(b:nextmsg(0)), { "kept" })
            end)

            it(c[1] .. " is rejected on a listener buffer", function()
                local lst = mtmsg.newlistener()
                local lb = lst:newbuffer()
                checkargerr(msg(2, "addmsg"), function() lb:addmsg(1, v) end)
                assert(select("#", lst:nextmsg(0)) == 0)
            end)
        end
    end)
end)
