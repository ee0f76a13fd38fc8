-- Tables as message elements (docs/REFERENCE.md, "Tables in messages"): copied by value at
-- send time and rebuilt as fresh tables on receive; every problem is found at send time
-- (an argument error naming the path, nothing stored); the byte accounting of tables; the
-- Sender C API's view of a table element; a seeded round-trip property test.
local mtmsg = require "mtmsg"
local H = require "helpers"
local probe = require "capiprobe"
local carray = require "carray"

local checkargerr, checkerr, pack, unpack = H.checkargerr, H.checkerr, H.pack, H.unpack

local SZ = probe.sizes()
local INT = 1 + SZ.integer
local FLOAT = 1 + SZ.number
local function str(n) return (n <= 255 and 2 or 1 + SZ.size_t) + n end
-- a table element: its header, then the sizes of its contents
local function tab(narr, nhash) return (narr <= 255 and nhash <= 255) and 3 or 1 + 2 * SZ.size_t end

local negzero = -1 / math.huge

-- Deep comparison: same keys and values, numbers with the same subtype (5.3+) and the
-- same bits (NaN == NaN, -0.0 ~= 0.0), tables compared structurally; table keys are
-- matched by structure too (a fresh table on the receiving side).
local same
local function samenum(a, b)
    if math.type and math.type(a) ~= math.type(b) then return false end
    if a ~= a then return b ~= b end
    if a == 0 and b == 0 then return 1 / a == 1 / b end
    return a == b
end
local function samekeys(a, b)
    local n = 0
    for k, v in pairs(a) do
        n = n + 1
        if type(k) == "table" then
            local found = false
            for k2, v2 in pairs(b) do
                if type(k2) == "table" and same(k, k2) and same(v, v2) then found = true break end
            end
            if not found then return false end
        else
            local v2 = rawget(b, k)
            if v2 == nil or not same(v, v2) then return false end
            if type(k) == "number" then    -- the key's subtype too
                for k2 in pairs(b) do
                    if k2 == k and not samenum(k, k2) then return false end
                end
            end
        end
    end
    for _ in pairs(b) do n = n - 1 end
    return n == 0
end
function same(a, b)
    if type(a) ~= type(b) then return false end
    if type(a) == "number" then return samenum(a, b) end
    if type(a) == "table" then return a ~= b and getmetatable(b) == nil and samekeys(a, b) end
    -- a C function comes back as a new closure on 5.1 and LuaJIT (codec_spec checks it)
    if type(a) == "function" and not H.has_integers and not rawequal(_VERSION, "Lua 5.2") then
        return true
    end
    return a == b
end

local function roundtrip(...)
    local b = mtmsg.newbuffer()
    assert(b:addmsg(...) == true)
    return pack(b:nextmsg(0))
end

local function check_roundtrip(label, t)
    local r = roundtrip("before", t, "after")
    assert(r.n == 3 and r[1] == "before" and r[3] == "after", label)
    assert(same(t, r[2]), label .. ": not the same table back")
end

describe("tables in messages", function()
    describe("round trips", function()
        it("nested records, arrays and mixed keys", function()
            check_roundtrip("empty", {})
            check_roundtrip("record", { id = 1, name = "x", tags = { "a", "b" }, pos = { x = 1.5, y = 2 } })
            check_roundtrip("mixed", { 10, 20, 30, [0] = "zero", [-1] = "neg", [5] = "hole",
                                       [true] = "t", [false] = { f = false }, [1.5] = 1.5,
                                       [2^53] = "big", x = { y = { z = { "deep" } } } })
            check_roundtrip("C function and -0.0 values", { print, negzero, 0 / 0, math.huge })
            check_roundtrip("table keys", { [{ 1, 2 }] = "list", [{}] = { {} } })
        end)

        it("integers stay integers and floats stay floats (5.3+)", function()
            local r = roundtrip({ 1, 2.0, [3.5] = 3, [4] = 4.0, n = math.maxinteger or 2^53 })[1]
            assert(r[1] == 1 and r[2] == 2 and r[3.5] == 3 and r[4] == 4)
            if H.has_integers then
                assert(math.type(r[1]) == "integer" and math.type(r[2]) == "float")
                assert(math.type(r[3.5]) == "integer" and math.type(r[4]) == "float")
                assert(r.n == math.maxinteger)
                local k = next(roundtrip({ [2^63] = true })[1])
                assert(math.type(k) == "float" and k == 2^63)
            end
        end)

        it("strings with embedded zeros, as keys and values", function()
            local s = "a\0b\0\0c" .. ("\0"):rep(300)
            local r = roundtrip({ [s] = s, ["\0"] = "\0", list = { s, "" } })[1]
            assert(r[s] == s and r["\0"] == "\0" and r.list[1] == s and r.list[2] == "")
        end)

        it("a 1 M entry array comes back whole, with its values in the array part", function()
            local t = {}
            for i = 1, 1000000 do t[i] = i end
            local r = roundtrip(t)[1]
            assert(#r == 1000000)
            for i = 1, 1000000, 9973 do assert(r[i] == i) end
            assert(r[1000000] == 1000000 and r[1000001] == nil)
        end)

        it("a wide map of 100 k entries", function()
            local t = {}
            for i = 1, 100000 do t["k" .. i] = i end
            local r = roundtrip(t)[1]
            local n = 0
            for k, v in pairs(r) do n = n + 1; assert(k == "k" .. v) end
            assert(n == 100000)
        end)

        it("tables 100 deep are accepted", function()
            local t = {} local cur = t
            for _ = 2, 100 do cur.a = {} cur = cur.a end
            cur.leaf = true
            local r = roundtrip(t)[1]
            for _ = 2, 100 do r = r.a end
            assert(r.leaf == true)
        end)

        it("values are copied at send time: later changes do not show", function()
            local b = mtmsg.newbuffer()
            local t = { 1, { 2 } }
            b:addmsg(t)
            t[1] = "changed"; t[2][1] = "changed"
            local r = b:nextmsg()
            assert(r[1] == 1 and r[2][1] == 2 and r ~= t)
        end)

        it("carrays inside tables arrive as new carrays", function()
            local a = carray.new("int", { 1, 2, 3 })
            local reuse = carray.new("int")
            local b = mtmsg.newbuffer()
            b:addmsg({ data = a, list = { a2 = carray.new("double", 2) } })
            local r = b:nextmsg(nil, reuse)
            assert(r.data:type() == "int" and r.list.a2:type() == "double")
            assert(r.data ~= a and r.data ~= reuse and r.data:len() == 3 and r.data:get(3) == 3)
            assert(r.list.a2:len() == 2)
            assert(reuse:len() == 0)        -- the unused reuse carray is emptied as before
        end)

        it("listener buffers, writer and reader", function()
            local lst = mtmsg.newlistener()
            local lb = lst:newbuffer()
            lb:addmsg({ k = "v" }, 1)
            local t, one = lst:nextmsg(0)
            assert(t.k == "v" and one == 1)

            local w = mtmsg.newwriter()
            w:add("head", { 1, { 2 } })
            w:add({ tail = true })
            local b = mtmsg.newbuffer()
            assert(w:addmsg(b))
            local r = mtmsg.newreader()
            assert(r:nextmsg(b, 0))
            assert(r:next() == "head")
            local x, y = r:next(2)
            assert(x[2][1] == 2 and y.tail == true)
            assert(select("#", r:next()) == 0)
        end)
    end)

    describe("rejected at send time with the path named, nothing stored", function()
        local function luaf() end
        local co = coroutine.create(luaf)
        local cyc = {} cyc.again = { back = cyc }
        local shared = { 1 }
        local deep = {} do local cur = deep for _ = 1, 100 do cur.a = {} cur = cur.a end end
        local cases = {
            { { cfg = { hosts = { "a", "b", luaf } } }, "t.cfg.hosts[3]: Lua function not supported" },
            { { co = co }, "t.co: thread not supported" },
            { { io.stdout }, "t[1]: userdata not supported" },
            { { b = mtmsg.newbuffer() }, "t.b: userdata not supported" },
            { setmetatable({}, {}), "t: table with a metatable not supported" },
            { { x = { y = setmetatable({}, { __index = {} }) } }, "t.x.y: table with a metatable not supported" },
            { { [luaf] = 1 }, "t: Lua function as a key not supported" },
            { { ["a b"] = { ["end"] = { [1.5] = { [true] = luaf } } } },
              't["a b"]["end"][1.5][true]: Lua function not supported' },
            { { [("x"):rep(40)] = luaf }, 't["xxxxxxxxxxxxxxxxxxxx..."]: Lua function not supported' },
            { { [("\127"):rep(30)] = luaf }, 't["' .. ("\\127"):rep(20) .. '..."]: Lua function not supported' },
            { cyc, "t.again.back: table cycle not supported" },
            { { shared, { shared } }, "t[2][1]: table appears twice in the message" },
            { { c = carray.newbadversion("int", 2) }, "t.c: carray capi version mismatch" },
        }

        it("buffer:addmsg, setmsg, writer:add, listener buffers", function()
            local b = mtmsg.newbuffer()
            local lst = mtmsg.newlistener()
            local lb = lst:newbuffer()
            local w = mtmsg.newwriter()
            b:addmsg("old")
            w:add("kept")
            for _, c in ipairs(cases) do
                checkargerr("bad argument #2 to 'addmsg' (" .. c[2] .. ")", function() b:addmsg(1, c[1], 3) end)
                checkargerr("bad argument #1 to 'setmsg' (" .. c[2] .. ")", function() b:setmsg(c[1]) end)
                checkargerr("bad argument #2 to 'add' (" .. c[2] .. ")", function() w:add({ ok = 1 }, c[1]) end)
                checkargerr("bad argument #1 to 'addmsg' (" .. c[2] .. ")", function() lb:addmsg(c[1]) end)
                assert(b:msgcnt() == 1 and lb:msgcnt() == 0, c[2])
            end
            assert(b:nextmsg(0) == "old")
            assert(w:addmsg(b))
            local r = pack(b:nextmsg(0))
            assert(r.n == 1 and r[1] == "kept")
            assert(lst:nextmsg(0) == nil)
        end)

        it("a table used twice, as two arguments", function()
            local b = mtmsg.newbuffer()
            local t = {}
            checkargerr("bad argument #3 to 'addmsg' (t: table appears twice in the message)",
                        function() b:addmsg(1, t, t) end)
            assert(b:msgcnt() == 0)
            assert(b:addmsg(t) and b:addmsg(t))     -- in separate messages: fine
        end)

        it("nesting deeper than 100", function()
            local b = mtmsg.newbuffer()
            local err = checkargerr(nil, function() b:addmsg(deep) end)
            assert(err:find("(t.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a....a.a.", 1, true), err)
            assert(err:find(": tables nested more than 100 deep)", 1, true), err)
            assert(#err < 250)
            assert(b:msgcnt() == 0)
        end)
    end)

    describe("byte accounting", function()
        it("a table costs its header plus its keys and values", function()
            local w = mtmsg.newwriter(1000, 0)
            local function size(v)
                w:clear()
                w:add(v)
                local ok, err = pcall(w.add, w, ("x"):rep(1000))    -- reads the size back
                return tonumber(err:match("message size (%d+)")) - str(1000)
            end
            assert(size({}) == tab(0, 0))
            assert(size({ 1, 2 }) == tab(2, 0) + 2 + 2)
            assert(size({ a = 1 }) == tab(0, 1) + str(1) + 2)
            assert(size({ x = 1.5, [300] = "s" }) == tab(0, 2) + str(1) + FLOAT + INT + str(1))
            assert(size({ { {} } }) == 3 * tab(1, 0) - tab(1, 0) + tab(0, 0))
            local big = {}
            for i = 1, 256 do big[i] = true end
            assert(size(big) == tab(256, 0) + 256 * 2 and tab(256, 0) == 1 + 2 * SZ.size_t)
        end)

        it("fixed-size buffers, writers and readers count tables", function()
            local t = { 1, 2 }                                 -- 7 bytes
            local b = mtmsg.newbuffer(1 + 7, 0)
            assert(b:addmsg(t) == true)
            assert(b:addmsg(t) == false)                       -- full now
            local err = checkerr("message_size", b.addmsg, b, { 1, 2, 3 })
            assert(err:find("message size 10 exceeds limit of 8 bytes", 1, true), err)
            local w = mtmsg.newwriter(7, 0)
            w:add(t)
            err = checkerr("message_size", w.add, w, nil)
            assert(err:find("message size 8 exceeds limit of 7 bytes", 1, true), err)
            local r = mtmsg.newreader(6, 0)
            checkerr("message_size", r.nextmsg, r, b, 0)
            assert(b:msgcnt() == 1)                            -- still queued
            assert(mtmsg.newreader(7, 0):nextmsg(b, 0))
        end)
    end)

    describe("native Sender API", function()
        it("reports a table element as 'table' and the values after it intact", function()
            local b = mtmsg.newbuffer()
            b:addmsg(1, { x = { 1, 2, "s" }, [{}] = true }, "after", { 3 }, 7)
            local rc, _, v = probe.ref(b):recv(false, 0)
            assert(rc == 0 and v.n == 5)
            assert(v[1].t == "integer" and v[2].t == "table" and v[4].t == "table")
            assert(v[3].t == "string" and v[3].v == "after")
            assert(v[5].t == "integer" and v[5].v == 7)
        end)
    end)

    describe("property: random nested tables round-trip", function()
        it("300 seeded cases", function()
            local seed = 20240609
            local function rnd(n)                  -- deterministic on every version
                seed = (seed * 1103515245 + 12345) % 2147483648
                return seed % n
            end
            local scalars = {
                function() return rnd(2) == 0 end,
                function() return rnd(1000) - 500 end,
                function() return (rnd(100000) - 50000) / 7 end,
                function() return 2^(rnd(60)) end,
                function() local s = {} for i = 1, rnd(20) do s[i] = string.char(rnd(256)) end return table.concat(s) end,
                function() return negzero end,
                function() return print end,
            }
            local function scalar() return scalars[rnd(#scalars) + 1]() end
            local gen
            local function key()
                local k
                repeat k = scalar() until k == k and type(k) ~= "function"   -- not NaN; C functions: new closures on 5.1
                return k
            end
            function gen(depth)
                local t = {}
                for i = 1, rnd(8) do t[i] = depth > 0 and rnd(4) == 0 and gen(depth - 1) or scalar() end
                for _ = 1, rnd(8) do
                    t[key()] = depth > 0 and rnd(3) == 0 and gen(depth - 1) or scalar()
                end
                return t
            end
            local b = mtmsg.newbuffer()
            local w, r = mtmsg.newwriter(), mtmsg.newreader()
            for case = 1, 300 do
                local t = gen(rnd(5))
                b:addmsg(t)
                assert(same(t, b:nextmsg(0)), "case " .. case)
                w:add(t, case)
                w:addmsg(b)
                assert(r:nextmsg(b, 0))
                local got, n = r:next(2)
                assert(n == case and same(t, got), "writer/reader case " .. case)
            end
        end)
    end)
end)
