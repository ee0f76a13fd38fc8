-- Cross-class arguments, generated: every method and metamethod of every class (found
-- by walking the real metatables, so new methods are covered without editing this
-- file), every argument position that takes an object, and every module function,
-- called with an object of every other kind: buffers, listeners, listener buffers,
-- writers and readers (empty, with content, closed, aborted, finalized), foreign
-- userdata (a file, a testthread handle, carrays), tables, strings, nil. A class check
-- must only accept objects of the class it names, wherever it runs: each call raises
-- a clear argument error ("bad argument #N to '...' (mtmsg.buffer expected, got ...)"),
-- never a crash and never a misreading of the object.
local mtmsg = require "mtmsg"
local H = require "helpers"
local thread = require "testthread"

local okcarray, carray = pcall(require, "carray")
if not okcarray then carray = nil end

-- ===== the objects: {name, class (mtmsg type name, or nil), make} =====
local kinds = {}
local function kind(name, class, make) kinds[#kinds + 1] = {name = name, class = class, make = make} end

-- Runs an object's own __gc by hand (the metatable is reachable through the debug
-- library; a finalizer of another object can reach a finalized one without it).
local function finalize(o)
    debug.getmetatable(o).__gc(o)
    return o
end

kind("buffer", "mtmsg.buffer", function() return mtmsg.newbuffer() end)
kind("named buffer with a message", "mtmsg.buffer", function()
    local b = mtmsg.newbuffer("crossclass"); b:addmsg(1, "x"); return b
end)
kind("nonblocking buffer", "mtmsg.buffer", function()
    local b = mtmsg.newbuffer(); b:nonblock(true); return b
end)
kind("closed buffer", "mtmsg.buffer", function() local b = mtmsg.newbuffer(); b:close(); return b end)
kind("aborted buffer", "mtmsg.buffer", function()
    local b = mtmsg.newbuffer(); b:abort(true); return b
end)
kind("buffer with a notifier", "mtmsg.buffer", function()
    local b = mtmsg.newbuffer(); b:notifier(mtmsg.newbuffer()); return b
end)
kind("finalized buffer", "mtmsg.buffer", function() return finalize(mtmsg.newbuffer()) end)
kind("listener", "mtmsg.listener", function() return mtmsg.newlistener() end)
kind("listener with a message", "mtmsg.listener", function()
    local l = mtmsg.newlistener(); l:newbuffer():addmsg(2); return l
end)
kind("closed listener", "mtmsg.listener", function()
    local l = mtmsg.newlistener(); l:close(); return l
end)
kind("aborted listener", "mtmsg.listener", function()
    local l = mtmsg.newlistener(); l:abort(true); return l
end)
kind("finalized listener", "mtmsg.listener", function() return finalize(mtmsg.newlistener()) end)
kind("listener buffer", "mtmsg.buffer", function() return mtmsg.newlistener():newbuffer() end)
kind("listener buffer with a message", "mtmsg.buffer", function()
    local b = mtmsg.newlistener():newbuffer(); b:addmsg("y"); return b
end)
kind("buffer of a closed listener", "mtmsg.buffer", function()
    local l = mtmsg.newlistener(); local b = l:newbuffer(); l:close(); return b
end)
kind("empty writer", "mtmsg.writer", function() return mtmsg.newwriter() end)
kind("writer with content", "mtmsg.writer", function()
    local w = mtmsg.newwriter(); w:add(1, "x", true, string.rep("z", 300)); return w
end)
kind("finalized writer", "mtmsg.writer", function()
    local w = mtmsg.newwriter(); w:add(1); return finalize(w)
end)
kind("empty reader", "mtmsg.reader", function() return mtmsg.newreader() end)
kind("reader with a message", "mtmsg.reader", function()
    local b = mtmsg.newbuffer(); b:addmsg(1, "x", 3)
    local r = mtmsg.newreader(); assert(r:nextmsg(b)); return r
end)
kind("finalized reader", "mtmsg.reader", function()
    local b = mtmsg.newbuffer(); b:addmsg(1, "x")
    local r = mtmsg.newreader(); assert(r:nextmsg(b)); r:next(); return finalize(r)
end)
kind("file", nil, function() return io.stdout end)
kind("testthread handle", nil, function()
    local t = thread.start(function() return 1 end); t:join(); return t
end)
if carray then
    kind("carray", nil, function() return carray.new("int", 2) end)
    kind("userdata without a carray api", nil, function() return carray.newnoapi() end)
end
kind("table", nil, function() return {} end)
kind("table posing as a notifier, receiver and sender", nil, function()
    local mt = debug.getmetatable(mtmsg.newbuffer())       -- the real API markers
    return setmetatable({}, {_capi_notify = mt._capi_notify, _capi_receiver = mt._capi_receiver,
                             _capi_sender = mt._capi_sender})
end)
if carray then
    kind("table posing as a carray", nil, function()
        return setmetatable({}, {_capi_carray = debug.getmetatable(carray.new("int", 1))._capi_carray})
    end)
end
kind("table posing as a buffer", nil, function()
    return setmetatable({}, {__name = "mtmsg.buffer", __index = {}})
end)
kind("string naming a class", nil, function() return "mtmsg.buffer" end)
kind("number", nil, function() return 1 end)
kind("function", nil, function() return print end)
kind("coroutine", nil, function() return coroutine.create(function() end) end)
kind("nil", nil, function() return nil end)

-- An object of each class, to find the method tables.
local samples = {
    ["mtmsg.buffer"] = function() return mtmsg.newbuffer() end,
    ["mtmsg.listener"] = function() return mtmsg.newlistener() end,
    ["mtmsg.writer"] = function() return mtmsg.newwriter() end,
    ["mtmsg.reader"] = function() return mtmsg.newreader() end,
}
local classnames = {"mtmsg.buffer", "mtmsg.listener", "mtmsg.writer", "mtmsg.reader"}

-- name -> function: the methods (through __index) and metamethods of a class, sorted
local function functions(class)
    local mt = debug.getmetatable(samples[class]())
    local list = {}
    for name, f in pairs(mt.__index) do list[#list + 1] = {name = name, f = f} end
    for _, name in ipairs({"__gc", "__tostring", "__close"}) do
        if mt[name] then list[#list + 1] = {name = name, f = mt[name]} end
    end
    table.sort(list, function(a, b) return a.name < b.name end)
    return list
end

local function esc(s) return (s:gsub("%p", "%%%0")) end

-- Asserts that f(...) raised "bad argument #pos to '<any>' (<what>)" where `what`
-- is a Lua pattern; returns the message.
local checked = 0
local function argerr(label, pos, what, f, ...)
    local ok, err = pcall(f, ...)
    checked = checked + 1
    assert(not ok, label .. ": expected an argument error, but the call succeeded")
    assert(type(err) == "string", label .. ": expected an error string, got a " .. type(err))
    assert(err:find("bad argument #" .. pos .. " to '[^']*' %(" .. what .. "%)$"),
           label .. ": unexpected error: " .. err)
    return err
end

-- What a class check of `class` says about the object of kind k at position pos.
local function classerr(class, k)
    if k.class == class then                        -- only a finalized one gets here
        return esc(class:sub(7)) .. " expected"
    end
    return esc(class) .. " expected, got [^)]+"
end

-- ===== the specs =====
describe("cross-class arguments", function()
    it("knows every class and finds its methods", function()
        for _, class in ipairs(classnames) do
            assert.equal(class, mtmsg.type(samples[class]()))
            assert.is_true(#functions(class) >= 4, class)
        end
        local names = {}
        for _, m in ipairs(functions("mtmsg.writer")) do names[m.name] = true end
        assert.is_true(names.addmsg and names.setmsg and names.add and names.__gc and true)
    end)

    for _, class in ipairs(classnames) do
        it("rejects every other kind as self of every " .. class .. " method", function()
            local n = 0
            for _, m in ipairs(functions(class)) do
                for _, k in ipairs(kinds) do
                    if k.class ~= class then
                        local label = class .. "." .. m.name .. "(" .. k.name .. ")"
                        argerr(label, 1, classerr(class, k), m.f, k.make(), mtmsg.newbuffer())
                        n = n + 1
                    end
                end
            end
            assert.is_true(n > 0)
        end)
    end

    it("takes a finalized object for no live one", function()
        for _, class in ipairs(classnames) do
            for _, m in ipairs(functions(class)) do
                for _, k in ipairs(kinds) do
                    -- buffers and listeners lose their object at __gc: a clean error, or
                    -- nothing for __gc itself; writers and readers stay usable
                    if k.class == class and k.name:find("^finalized") and m.name ~= "__gc"
                       and (class == "mtmsg.buffer" or class == "mtmsg.listener") then
                        argerr(class .. "." .. m.name .. "(" .. k.name .. ")", 1,
                               classerr(class, k), m.f, k.make())
                    end
                end
            end
        end
    end)

    -- arguments after self that must be a buffer
    for _, name in ipairs({"addmsg", "setmsg"}) do
        it("writer:" .. name .. " takes a buffer and only a buffer", function()
            for _, wk in ipairs(kinds) do
                if wk.class == "mtmsg.writer" then
                    for _, k in ipairs(kinds) do
                        if k.class ~= "mtmsg.buffer" or k.name:find("^finalized") then
                            local w = wk.make()
                            argerr("writer(" .. wk.name .. "):" .. name .. "(" .. k.name .. ")", 2,
                                   classerr("mtmsg.buffer", k), w[name], w, k.make())
                        end
                    end
                end
            end
        end)
    end

    it("reader:nextmsg takes a buffer or a listener and nothing else", function()
        for _, k in ipairs(kinds) do
            if (k.class ~= "mtmsg.buffer" and k.class ~= "mtmsg.listener")
               or k.name:find("^finalized") then
                local r = mtmsg.newreader()
                argerr("reader:nextmsg(" .. k.name .. ")", 2, "buffer or listener expected",
                       r.nextmsg, r, k.make(), 0)
            end
        end
    end)

    it("buffer:notifier takes nil or a notifier and nothing else", function()
        for _, k in ipairs(kinds) do
            if k.class ~= "mtmsg.buffer" and k.name ~= "nil" then
                local b = mtmsg.newbuffer()
                argerr("buffer:notifier(" .. k.name .. ")", 2,
                       "[a-z ]*notifier[a-z ]*", b.notifier, b, k.make())
                -- nothing was set: a buffer notifier can still be installed
                b:notifier(mtmsg.newbuffer())
            end
        end
        -- a buffer is a notifier: also listener buffers, but not a finalized one
        local b = mtmsg.newbuffer()
        argerr("buffer:notifier(finalized buffer)", 2, "invalid notifier",
               b.notifier, b, finalize(mtmsg.newbuffer()))
        b:notifier(mtmsg.newlistener():newbuffer())
    end)

    it("carray positions of nextmsg and next take carrays only", function()
        local function carrayish(k) return k.name == "carray" or k.name == "nil" end
        for _, k in ipairs(kinds) do
            if not carrayish(k) then
                local b = mtmsg.newbuffer(); b:nonblock(true)
                local l = mtmsg.newlistener(); l:nonblock(true)
                local r = mtmsg.newreader()
                if k.name ~= "number" then
                    argerr("buffer:nextmsg(" .. k.name .. ")", 2,
                           "timeout seconds or carray expected", b.nextmsg, b, k.make())
                    argerr("listener:nextmsg(" .. k.name .. ")", 2,
                           "timeout seconds or carray expected", l.nextmsg, l, k.make())
                    argerr("reader:next(" .. k.name .. ")", 2, "[^)]*expected[^)]*",
                           r.next, r, k.make())
                end
                argerr("buffer:nextmsg(0, " .. k.name .. ")", 3, "[a-z ]*carray expected",
                       b.nextmsg, b, 0, k.make())
                argerr("listener:nextmsg(0, " .. k.name .. ")", 3, "[a-z ]*carray expected",
                       l.nextmsg, l, 0, k.make())
                argerr("reader:next(1, " .. k.name .. ")", 3, "[a-z ]*carray expected",
                       r.next, r, 1, k.make())
                if k.name ~= "number" then
                    argerr("reader:nextmsg(b, " .. k.name .. ")", 3, "timeout seconds expected",
                           r.nextmsg, r, b, k.make())
                end
            end
        end
    end)

    it("module functions take any object without harm", function()
        for name, f in pairs(mtmsg) do
            if type(f) == "function" and name ~= "sleep" and name ~= "abort"
               and name ~= "_failalloc" then
                for _, k in ipairs(kinds) do
                    local ok, err = pcall(f, k.make())
                    assert(ok or type(err) == "string", "mtmsg." .. name .. "(" .. k.name .. ")")
                end
            end
        end
        for _, k in ipairs(kinds) do
            local t = mtmsg.type(k.make())
            if k.class then assert.equal(k.class, t) else assert.equal("string", type(t)) end
            if not k.class then assert.is_nil(t:find("^mtmsg%.")) end
            if k.name ~= "nil" and type(k.make()) ~= "userdata" then assert.equal(type(k.make()), t) end
        end
        argerr("mtmsg.buffer(writer)", 1, "buffer name or id expected, got userdata", mtmsg.buffer, mtmsg.newwriter())
        argerr("mtmsg.listener(buffer)", 1, "listener name or id expected, got userdata", mtmsg.listener, mtmsg.newbuffer())
    end)

    it("checks the argument of the internal work buffers' __gc", function()
        -- reachable with the debug library: upvalue 1 of a module function
        local _, scratch = debug.getupvalue(mtmsg.newwriter, 1)
        if _VERSION == "Lua 5.1" and not H.is_luajit then     -- no C upvalues from Lua
            assert.is_nil(scratch)
            return
        end
        assert.equal("userdata", type(scratch))
        local gc = debug.getmetatable(scratch).__gc
        for _, k in ipairs(kinds) do
            argerr("workbuffer.__gc(" .. k.name .. ")", 1, "mtmsg%.workbuffer expected, got [^)]+",
                   gc, k.make())
        end
        gc(scratch)                                     -- by hand, idle: harmless
        local b = mtmsg.newbuffer()
        b:addmsg(1, "x")
        H.same(H.pack(b:nextmsg(0)), {1, "x"})
    end)

    it("keeps metamethods out of reach of the objects", function()
        for _, class in ipairs(classnames) do
            local o = samples[class]()
            assert.equal(class, getmetatable(o))        -- protected
            for _, name in ipairs({"__gc", "__close", "__tostring", "__index", "__metatable", "__name"}) do
                assert.is_nil(o[name], class .. "." .. name)
            end
        end
    end)

    it("leaves the wrongly passed objects intact", function()
        local w = mtmsg.newwriter(); w:add(1, "x")
        local r = mtmsg.newreader()
        local b = mtmsg.newbuffer(); b:addmsg(5, "y")
        for _, class in ipairs(classnames) do
            for _, m in ipairs(functions(class)) do
                for _, o in ipairs({w, r, b}) do
                    if mtmsg.type(o) ~= class then pcall(m.f, o, w, r, b) end
                end
            end
        end
        pcall(w.addmsg, w, w); pcall(w.setmsg, w, r); pcall(r.nextmsg, r, w, 0)
        H.same(H.pack(b:nextmsg(0)), {5, "y"})
        assert.is_true(w:addmsg(b))
        assert.is_true(r:nextmsg(b, 0))
        H.same(H.pack(r:next(2)), {1, "x"})
    end)

    -- buffer methods remember the last buffer that passed their self check (one pointer
    -- comparison on the next call with it); __gc must make them forget it
    it("forgets a remembered buffer when it is finalized", function()
        for _, name in ipairs({"addmsg", "setmsg", "nextmsg", "msgcnt", "id"}) do
            local b = mtmsg.newbuffer()
            local f = b[name]
            f(b, 0); f(b, 0)                            -- checked, then remembered
            finalize(b)
            argerr("buffer." .. name .. "(finalized after use)", 1, "buffer expected", f, b)
            argerr("buffer." .. name .. "(a writer after that)", 1,
                   "mtmsg%.buffer expected, got [^)]+", f, mtmsg.newwriter())
            local b2 = mtmsg.newbuffer()                -- and takes the next one as before
            f(b2, 0)
            assert.is_true(mtmsg.buffer(b2:id()) ~= nil)
        end
    end)

    -- a C function that travelled in a message comes back without upvalues: such a __gc
    -- has no class context to clear (found by the API fuzzer: a segfault)
    it("rejects a remembered buffer finalized by a __gc without upvalues", function()
        local carrier = mtmsg.newbuffer()
        carrier:addmsg(debug.getmetatable(carrier).__gc)
        local bare_gc = carrier:nextmsg(0)
        assert.is_true(type(bare_gc) == "function" and bare_gc ~= debug.getmetatable(carrier).__gc)
        for _, name in ipairs({"addmsg", "setmsg", "nextmsg"}) do
            local b = mtmsg.newbuffer()
            local f = b[name]
            f(b, 0); f(b, 0)                            -- checked, then remembered
            bare_gc(b)
            argerr("buffer." .. name .. "(finalized by a bare __gc)", 1, "buffer expected", f, b)
        end
    end)

    it("shares what buffer methods remember between two loads of the module", function()
        local old = package.loaded.mtmsg
        package.loaded.mtmsg = nil
        local ok, m2 = pcall(require, "mtmsg")
        package.loaded.mtmsg = old
        assert.is_true(ok, tostring(m2))
        local b = m2.newbuffer()
        local add, next1 = old.newbuffer().addmsg, b.nextmsg   -- methods of both loads
        assert.is_true(add(b, 7))
        H.same(H.pack(next1(b, 0)), {7})
        finalize(b)                                     -- the __gc of the last load
        argerr("addmsg of the first load(finalized)", 1, "buffer expected", add, b)
        argerr("nextmsg of the last load(finalized)", 1, "buffer expected", next1, b)
    end)

    it("checked enough calls", function()
        assert.is_true(checked > 1000, checked)
    end)
end)
