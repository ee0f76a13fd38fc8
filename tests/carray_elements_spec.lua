-- carray objects as message elements (the Carray C API consumed by mtmsg), with the test-only
-- provider tests/mod/carray.c: copies on send, the reuse list on receive, error texts, and
-- messages kept in the buffer when an argument or carray module error is raised.
local mtmsg = require "mtmsg"
local carray = require "carray"
local H = require "helpers"
local checkargerr, pack = H.checkargerr, H.pack

local is53 = math.type ~= nil

local TYPES = {
    { "unsigned char", { 0, 1, 255 } },
    { "signed char", { -128, 0, 127 } },
    { "short", { -32768, 7, 32767 } },
    { "unsigned short", { 0, 65535 } },
    { "int", { -2147483648, 2147483647 } },
    { "unsigned int", { 0, 4294967295 } },
    { "long", { -2147483648, 2147483647 } },
    { "unsigned long", { 0, 4294967295 } },
    { "float", { -1.5, 0.25 } },
    { "double", { -1e300, 0.1 } },
    { "long long", { -2 ^ 53, 2 ^ 53 } },
    { "unsigned long long", { 0, 2 ^ 53 } },
}

local function same_array(a, tname, values, what)
    what = what or tname
    assert(carray.info(a) ~= nil, what .. ": not a carray")
    assert(a:type() == tname, what .. ": type " .. a:type())
    assert(#a == #values, what .. ": length " .. #a .. ", expected " .. #values)
    for i, v in ipairs(values) do
        assert(a:get(i) == v, what .. " #" .. i .. ": " .. tostring(a:get(i)))
    end
end

-- The path of the carray test module, for loaders that bypass require.
local function carray_path()
    for pat in package.cpath:gmatch("[^;]+") do
        local p = pat:gsub("%?", "carray")
        local f = io.open(p)
        if f then f:close(); return p end
    end
end

describe("carray elements", function()
    -- collect the reference carrays made here before other specs count their releases
    teardown(H.gc)

    describe("round trips", function()
        it("every element type through addmsg / nextmsg", function()
            local b = mtmsg.newbuffer()
            for _, t in ipairs(TYPES) do
                local src = carray.new(t[1], t[2])
                b:addmsg("x", src, 5, carray.new(t[1]))
                src:set(1, t[2][2])                         -- the message holds a copy
                local x, a, five, e = b:nextmsg(0)
                assert(x == "x" and five == 5, t[1])
                same_array(a, t[1], t[2])
                same_array(e, t[1], {}, t[1] .. " empty")
                assert(a ~= src)
                if is53 then
                    local f = a:get(1)
                    if t[1] == "float" or t[1] == "double" then assert(math.type(f) == "float")
                    else assert(math.type(f) == "integer", t[1]) end
                end
            end
        end)

        it("writer:add / reader:next / listener:nextmsg / setmsg", function()
            local lst = mtmsg.newlistener()
            local b = lst:newbuffer()
            local w, r = mtmsg.newwriter(), mtmsg.newreader()
            for _, t in ipairs(TYPES) do
                w:add(carray.new(t[1], t[2]), "after")
                w:addmsg(b)
                same_array((lst:nextmsg(0)), t[1], t[2], "listener " .. t[1])
                w:add(1, carray.new(t[1], t[2]))
                w:setmsg(b)
                assert(r:nextmsg(b, 0))
                assert(r:next() == 1)
                same_array(r:next(), t[1], t[2], "reader " .. t[1])
                assert(r:next() == nil)
            end
        end)

        it("read-only, reference and chained carrays can be sent", function()
            local b = mtmsg.newbuffer()
            b:addmsg(carray.new("int", "readonly", { 1, 2 }), carray.newref("short", 3),
                     carray.newchained("double", { 2.5 }))
            local a, r, c = b:nextmsg(0)
            same_array(a, "int", { 1, 2 })
            assert(a:isreadonly() == false, "received carrays are new, writable arrays")
            same_array(r, "short", { 0, 0, 0 })
            same_array(c, "double", { 2.5 })
        end)

        it("big arrays and many arrays in one message", function()
            local b = mtmsg.newbuffer()
            local big = carray.new("double", 100000)
            big:set(100000, 7.5)
            local list = {}
            for i = 1, 200 do list[i] = carray.new("int", { i }) end
            b:addmsg(big, H.unpack(list))
            local r = pack(b:nextmsg(0))
            assert(r.n == 201 and #r[1] == 100000 and r[1]:get(100000) == 7.5)
            for i = 1, 200 do assert(r[i + 1]:get(1) == i) end
        end)
    end)

    describe("sending errors", function()
        it("incompatible versions and foreign userdata are argument errors; nothing is added", function()
            local b = mtmsg.newbuffer()
            local w = mtmsg.newwriter()
            checkargerr("bad argument #2 to 'addmsg' (carray capi version mismatch)",
                        function() b:addmsg(1, carray.newbadversion("int", 2)) end)
            checkargerr("bad argument #1 to 'setmsg' (carray capi version mismatch)",
                        function() b:setmsg(carray.newbadversion("int")) end)
            checkargerr("bad argument #1 to 'addmsg' (parameter type not supported)",
                        function() b:addmsg(carray.newnoapi()) end)
            checkargerr("bad argument #1 to 'addmsg' (parameter type not supported)",
                        function() b:addmsg(mtmsg.newwriter()) end)
            checkargerr("bad argument #1 to 'addmsg' (parameter type not supported)",
                        function() b:addmsg(carray.newbadmarker("key")) end)
            checkargerr("bad argument #2 to 'add' (carray capi version mismatch)",
                        function() w:add(1, carray.newbadversion("int")) end)
            checkargerr("bad argument #1 to 'add' (parameter type not supported)",
                        function() w:add(carray.newnoapi()) end)
            assert(b:msgcnt() == 0)
            w:addmsg(b)
            assert(select("#", b:nextmsg(0)) == 0, "the writer stayed empty")
        end)
    end)

    describe("reuse list", function()
        it("a matching carray is filled and returned; others are emptied and skipped", function()
            local b = mtmsg.newbuffer()
            b:addmsg(carray.new("int", { 1, 2, 3 }))
            local d, i = carray.new("double", { 9, 9 }), carray.new("int", 10)
            local r = pack(b:nextmsg(d, i))
            assert(r.n == 1 and rawequal(r[1], i))
            same_array(i, "int", { 1, 2, 3 })
            same_array(d, "double", {}, "skipped")
        end)

        it("new carrays once the list is exhausted; unused entries end up empty", function()
            local b = mtmsg.newbuffer()
            local x, y, z = carray.new("short", { 5 }), carray.new("short", { 6 }),
                            carray.new("float", { 7 })
            b:addmsg(carray.new("short", { 1 }), carray.new("short", { 2 }),
                     carray.new("short", { 3 }))
            local r = pack(b:nextmsg(0, x, nil, y))
            assert(rawequal(r[1], x) and rawequal(r[2], y) and r[3] ~= x and r[3] ~= y)
            same_array(r[3], "short", { 3 })
            b:addmsg(carray.new("short", { 4 }))
            r = pack(b:nextmsg(nil, x, y, nil, z))
            assert(r.n == 1 and rawequal(r[1], x))
            same_array(y, "short", {}, "unused y")
            same_array(z, "float", {}, "unused z")
        end)

        it("the first argument can be a carray; the reader and the listener follow the same rules", function()
            local lst = mtmsg.newlistener()
            local b = lst:newbuffer()
            local a = carray.new("long", 1)
            b:addmsg(carray.new("long", { 11, 12 }))
            assert(rawequal(b:nextmsg(a), a))
            same_array(a, "long", { 11, 12 })
            b:addmsg(carray.new("long", { 13 }))
            assert(rawequal(lst:nextmsg(a), a))
            same_array(a, "long", { 13 })
            local r = mtmsg.newreader()
            b:addmsg(1, carray.new("long", { 14 }), carray.new("long", { 15 }), 2)
            assert(r:nextmsg(b))
            local u = carray.new("long")
            local v1, v2 = r:next(2, u)
            assert(v1 == 1 and rawequal(v2, u))
            same_array(u, "long", { 14 })
            local v3 = r:next(a)
            assert(rawequal(v3, a))
            same_array(a, "long", { 15 })
            assert(r:next(u) == 2)
            same_array(u, "long", {}, "unused by next")
        end)

        it("the same object may appear several times", function()
            local b = mtmsg.newbuffer()
            local a = carray.new("int")
            b:addmsg(carray.new("int", { 1 }), "mid", carray.new("int", { 2, 3 }))
            local r = pack(b:nextmsg(0, a, a))
            assert(r.n == 3 and rawequal(r[1], a) and rawequal(r[3], a) and r[2] == "mid")
            same_array(a, "int", { 2, 3 }, "filled twice: the second array")
            b:addmsg(carray.new("int", { 4 }))
            r = pack(b:nextmsg(0, a, a))
            assert(rawequal(r[1], a))
            same_array(a, "int", {}, "a listed again after its use is reset as unused")
        end)

        it("empty arrays, also into carrays that never had storage", function()
            local b = mtmsg.newbuffer()
            local a = carray.new("int")                    -- no storage (docs/CAPI.md 7.5)
            b:addmsg(carray.new("int"))
            assert(rawequal(b:nextmsg(a), a) and #a == 0)
            b:addmsg(carray.new("double"))
            local e = b:nextmsg(carray.new("unsigned char"), carray.new("unsigned char"))
            same_array(e, "double", {})
            b:addmsg()
            assert(select("#", b:nextmsg(0, carray.new("int"))) == 0)
            local d = carray.new("double", { 1 })
            assert(select("#", b:nextmsg(0, d)) == 0, "a timeout returns nothing")
            assert(#d == 0, "unused carrays are reset also when nothing is received")
        end)

        it("carrays that cannot be resized raise after the message was taken", function()
            local b = mtmsg.newbuffer()
            b:addmsg(carray.new("short", { 1, 2 }))
            local ok, err = pcall(b.nextmsg, b, 0, carray.newref("short", 1))
            assert(not ok and err:find("cannot resize carray", 1, true), tostring(err))
        end)
    end)

    describe("receiving errors keep the message", function()
        it("exact argument errors at the right position", function()
            local lst = mtmsg.newlistener()
            local b = lst:newbuffer()
            b:addmsg(carray.new("int", { 1 }))
            for _, o in ipairs { b, lst } do
                checkargerr("bad argument #1 to 'nextmsg' (carray capi version mismatch)",
                            function() o:nextmsg(carray.newbadversion("int")) end)
                checkargerr("bad argument #2 to 'nextmsg' (carray capi version mismatch)",
                            function() o:nextmsg(0, carray.newbadversion("int")) end)
                checkargerr("bad argument #1 to 'nextmsg' (timeout seconds or carray expected)",
                            function() o:nextmsg(carray.newnoapi()) end)
                checkargerr("bad argument #3 to 'nextmsg' (carray expected)",
                            function() o:nextmsg(0, nil, carray.newnoapi()) end)
                checkargerr("bad argument #1 to 'nextmsg' (writable carray expected)",
                            function() o:nextmsg(carray.new("int", "readonly", 1)) end)
                checkargerr("bad argument #2 to 'nextmsg' (writable carray expected)",
                            function() o:nextmsg(carray.new("int"),
                                                 carray.new("int", "readonly")) end)
                checkargerr("bad argument #2 to 'nextmsg' (carray expected)",
                            function() o:nextmsg(nil, mtmsg.newbuffer()) end)
            end
            local r = mtmsg.newreader()
            checkargerr("bad argument #2 to 'nextmsg' (timeout seconds expected)",
                        function() r:nextmsg(b, carray.new("int")) end)
            assert(b:msgcnt() == 1)
            assert(r:nextmsg(b))
            checkargerr("bad argument #1 to 'next' (writable carray expected)",
                        function() r:next(carray.new("int", "readonly")) end)
            checkargerr("bad argument #1 to 'next' (carray capi version mismatch)",
                        function() r:next(carray.newbadversion("int")) end)
            checkargerr("bad argument #1 to 'next' (integer or carray expected)",
                        function() r:next(carray.newnoapi()) end)
            checkargerr("bad argument #3 to 'next' (carray expected)",
                        function() r:next(1, carray.new("int"), {}) end)
            same_array(r:next(), "int", { 1 }, "the reader kept its position")
        end)

        -- A fresh Lua state whose `require "carray"` yields modules without a usable API.
        local function broken_module(id, path)
            local m = require "mtmsg"
            local b = m.buffer(id)
            local real = package.loadlib(path, "luaopen_carray")()
            local bad = debug.getmetatable(real.newbadversion("int"))._capi_carray
            local out = {}
            package.loaded.carray = {}                       -- no API at all
            out[1] = select(2, pcall(b.nextmsg, b, 0))
            out[2] = b:msgcnt()
            package.loaded.carray = setmetatable({}, { _capi_carray = bad })
            out[3] = select(2, pcall(b.nextmsg, b, 0))
            out[4] = b:msgcnt()
            -- a reuse list that suffices needs no module
            local mine = real.new("int")
            out[5] = rawequal(b:nextmsg(0, mine), mine) and #mine
            out[6] = b:msgcnt()
            -- reader:next creates carrays too
            local r = m.newreader()
            assert(r:nextmsg(b, 0))
            out[7] = select(2, pcall(r.next, r))
            package.loaded.carray = real
            local a = r:next()
            out[8] = a:type() .. "/" .. #a
            out[9] = b:nextmsg(0):get(1)
            return (table.unpack or unpack)(out, 1, 9)
        end

        it("carray module errors are raised before the message is taken", function()
            local b = mtmsg.newbuffer()
            b:addmsg(carray.new("int", { 1, 2 }))
            b:addmsg(carray.new("int", { 3 }))
            b:addmsg(carray.new("short", { 4 }))
            local r = H.joinok(H.thread().start(broken_module, b:id(), carray_path()))
            assert(r[1]:find("carray capi not found", 1, true), tostring(r[1]))
            assert(r[2] == 3)
            assert(r[3]:find("carray capi version mismatch", 1, true), tostring(r[3]))
            assert(r[4] == 3)
            assert(r[5] == 2 and r[6] == 2)
            assert(r[7]:find("carray capi version mismatch", 1, true), tostring(r[7]))
            assert(r[8] == "int/1" and r[9] == 4)
        end)

        -- `require "carray"` runs Lua code; here it uses mtmsg in the same state (scratch
        -- space included) before the message with arrays is decoded.
        local function reentrant_loader(id, path)
            local m = require "mtmsg"
            local b = m.buffer(id)
            local side = m.newbuffer()
            package.preload.carray = function()
                local big = ("s"):rep(300000)
                side:addmsg(big, 1, 2, 3)
                assert(side:nextmsg(0) == big)
                return package.loadlib(path, "luaopen_carray")()
            end
            local r = { b:nextmsg(0) }
            return r[1], r[2]:type(), r[2]:get(1), r[2]:get(3), r[3], #r
        end

        it("Lua code run by require \"carray\" cannot disturb the message being decoded", function()
            local b = mtmsg.newbuffer()
            b:addmsg(("before"):rep(100), carray.new("double", { 1.5, 2.5, 3.5 }), "after")
            local r = H.joinok(H.thread().start(reentrant_loader, b:id(), carray_path()))
            assert(r[1] == ("before"):rep(100))
            assert(r[2] == "double" and r[3] == 1.5 and r[4] == 3.5)
            assert(r[5] == "after" and r[6] == 3)
        end)
    end)
end)
