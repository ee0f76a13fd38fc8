-- Bad input, table-driven: every public function and method, every argument position,
-- with values of every type and out-of-range numbers (nil, booleans, 0, negative, NaN,
-- +-inf, 2^53, 2^63, maxinteger, strings, tables, Lua and C functions, coroutines,
-- foreign userdata, mtmsg objects of the wrong kind, closed objects, collected handles).
-- Each call must give a clean Lua error (an argument error or an mtmsg.error.*) or its
-- documented result, never crash; the classifier below says which one is expected.
local mtmsg = require "mtmsg"
local H = require "helpers"
local unpack = H.unpack

local okcarray, carray = pcall(require, "carray")
if not okcarray then carray = nil end

local NAN = 0 / 0
local BIG63 = 2 ^ 63

-- ===== the bad values: name -> constructor (fresh per call: some get closed or used) =====
local values = {
    {"nil", function() return nil end},
    {"true", function() return true end},
    {"false", function() return false end},
    {"0", function() return 0 end},
    {"1", function() return 1 end},
    {"-1", function() return -1 end},
    {"0.5", function() return 0.5 end},
    {"-0.5", function() return -0.5 end},
    {"NaN", function() return NAN end},
    {"inf", function() return math.huge end},
    {"-inf", function() return -math.huge end},
    {"2^53", function() return 2 ^ 53 end},
    {"2^63", function() return BIG63 end},
    {"-2^63", function() return -BIG63 end},
    {"maxinteger", function() return math.maxinteger or 2 ^ 53 end},
    {"mininteger", function() return math.mininteger or -2 ^ 53 end},
    {"''", function() return "" end},
    {"'x'", function() return "x" end},
    {"'12'", function() return "12" end},
    {"'\\0'", function() return "\0" end},
    {"long string", function() return string.rep("n", 1000) end},
    {"table", function() return {} end},
    {"Lua function", function() return function() end end},
    {"C function", function() return print end},
    {"coroutine", function() return coroutine.create(function() end) end},
    {"file", function() return io.stdout end},
    {"buffer", function() return mtmsg.newbuffer() end},
    {"closed buffer", function() local b = mtmsg.newbuffer(); b:close(); return b end},
    {"listener", function() return mtmsg.newlistener() end},
    {"closed listener", function() local l = mtmsg.newlistener(); l:close(); return l end},
    {"writer", function() return mtmsg.newwriter() end},
    {"reader", function() return mtmsg.newreader() end},
}
if carray then values[#values + 1] = {"carray", function() return carray.new("int", 2) end} end

-- kinds of a value, for the classifiers
local function kind(v)
    local t = type(v)
    if t == "number" then
        if v ~= v then return "nan" end
        if v == math.huge or v == -math.huge then return "inf" end
        if v ~= math.floor(v) then return "fraction" end
        if v >= BIG63 or v < -BIG63 then return "huge" end
        return "integer"
    end
    if t == "userdata" then
        local mt = mtmsg.type(v)
        if mt == "mtmsg.buffer" or mt == "mtmsg.listener" or mt == "mtmsg.writer"
           or mt == "mtmsg.reader" or mt == "carray" then return mt end
        return "foreign"
    end
    if t == "function" then return pcall(string.dump, v) and "luafunction" or "cfunction" end
    return t
end

-- classifier helpers: value -> "ok" | "argerr" | "any" (a clean error or a result)
local function only(...)
    local ok = {}
    for _, k in ipairs({...}) do ok[k] = true end
    return function(v) return ok[kind(v)] and "ok" or "argerr" end
end
local function element(v)                        -- a message element
    local k = kind(v)
    if k == "nil" or k == "boolean" or k == "string" or k == "cfunction" or k == "carray"
       or k == "integer" or k == "fraction" or k == "nan" or k == "inf" or k == "huge"
       or k == "table" then                      -- plain tables: see tables_spec.lua
        return "ok"
    end
    return "argerr"
end
local function timeout(v)                        -- receive timeout (or a carray to reuse)
    local k = kind(v)
    if k == "nil" or type(v) == "number" or k == "carray" then return "ok" end
    return "argerr"
end
-- flags take a boolean or nothing: an explicit nil is an argument error (docs/COMPAT.md)
local flag = only("boolean")
local function size(v)                           -- size: integer-valued number (or nil)
    local k = kind(v)
    if k == "nil" or k == "integer" then return "ok" end
    if k == "string" and tonumber(v) and tonumber(v) == math.floor(tonumber(v)) then return "ok" end
    return "argerr"
end
local function grow(v)                           -- grow factor: any number (or nil)
    if v == nil or type(v) == "number" then return "ok" end
    if type(v) == "string" and tonumber(v) then return "ok" end
    return "argerr"
end
local function name_or_size(v)                   -- newbuffer's first argument
    if type(v) == "string" then return "ok" end
    return size(v)
end
local function lookup(v)                         -- mtmsg.buffer / mtmsg.listener
    if type(v) == "string" or kind(v) == "integer" then return "any" end -- unknown_object
    return "argerr"
end
local function count(v)                          -- reader:next count
    local k = kind(v)
    if k == "nil" or k == "integer" or k == "inf" or k == "huge" or k == "carray" then return "ok" end
    return "argerr"
end
local function any() return "any" end

-- ===== the calls: {name, make(v) -> f, args...; class(v); setup?} =====
-- A "msg" setup queues one message first, so that a receive never blocks.
local calls = {}
local function call(name, class, make) calls[#calls + 1] = {name = name, class = class, make = make} end

-- module functions
call("mtmsg.newbuffer(v)", name_or_size, function(v) return mtmsg.newbuffer, v end)
call("mtmsg.newbuffer('n', v)", size, function(v) return mtmsg.newbuffer, "n", v end)
call("mtmsg.newbuffer(16, v)", grow, function(v) return mtmsg.newbuffer, 16, v end)
call("mtmsg.newbuffer('n', 16, v)", grow, function(v) return mtmsg.newbuffer, "n", 16, v end)
call("mtmsg.buffer(v)", lookup, function(v) return mtmsg.buffer, v end)
call("mtmsg.newlistener(v)", only("nil", "string", "integer", "fraction", "nan", "inf", "huge"),
     function(v) return mtmsg.newlistener, v end)
call("mtmsg.listener(v)", lookup, function(v) return mtmsg.listener, v end)
call("mtmsg.abort(v)", flag, function(v) return mtmsg.abort, v end)
call("mtmsg.isabort(v)", any, function(v) return mtmsg.isabort, v end)
call("mtmsg.time(v)", any, function(v) return mtmsg.time, v end)
call("mtmsg.type(v)", any, function(v) return mtmsg.type, v end)
call("mtmsg.sleep(v)", function(v)
    local k = kind(v)
    if k == "integer" or k == "fraction" or k == "nan" or k == "inf" or k == "huge" then return "ok" end
    if k == "string" and tonumber(v) then return "ok" end
    return "argerr"
end, function(v)
    -- only values that return at once: long sleeps are tested with a thread below
    if type(v) == "number" and v > 0.01 then v = -v end
    if type(v) == "string" and tonumber(v) and tonumber(v) > 0 then v = "0" end
    return mtmsg.sleep, v
end)
call("mtmsg.newwriter(v)", size, function(v) return mtmsg.newwriter, v end)
call("mtmsg.newwriter(8, v)", grow, function(v) return mtmsg.newwriter, 8, v end)
call("mtmsg.newreader(v)", size, function(v) return mtmsg.newreader, v end)
call("mtmsg.newreader(8, v)", grow, function(v) return mtmsg.newreader, 8, v end)

-- methods: with v as self (always an argument error unless it is the right kind)
local selfcalls = {
    {"mtmsg.buffer", mtmsg.newbuffer, {"id", "name", "addmsg", "setmsg", "msgcnt", "clear",
                                       "nextmsg", "nonblock", "isnonblock", "close", "abort",
                                       "isabort", "notifier", "getfd", "pollfd", "events",
                                       "timeout"}},
    {"mtmsg.listener", mtmsg.newlistener, {"id", "name", "newbuffer", "nextmsg", "nonblock",
                                           "isnonblock", "clear", "close", "abort", "isabort",
                                           "getfd", "pollfd", "events", "timeout"}},
    {"mtmsg.writer", mtmsg.newwriter, {"add", "addmsg", "setmsg", "clear"}},
    {"mtmsg.reader", mtmsg.newreader, {"next", "nextmsg", "clear"}},
}
for _, sc in ipairs(selfcalls) do
    local tname, new, methods = sc[1], sc[2], sc[3]
    local proto = new()
    for _, m in ipairs(methods) do
        local f = proto[m]
        assert(f, tname .. ":" .. m .. " missing")
        call(tname .. ":" .. m .. " with v as self", function(v)
            if kind(v) == tname then return "any" end
            return "argerr"
        end, function(v)
            local args = {}
            if m == "nextmsg" and kind(v) == "mtmsg.buffer" then pcall(v.addmsg, v, 1) end
            if m == "nextmsg" and tname == "mtmsg.reader" then args = {mtmsg.newbuffer(), 0} end
            if m == "nextmsg" and tname == "mtmsg.listener" then args = {0} end
            if m == "notifier" then args = {nil} end
            return f, v, unpack(args, 1, 2)
        end)
    end
end

-- buffer methods: arguments
local function withmsg(b) pcall(b.addmsg, b, "m") return b end   -- (closed: no message)
call("buffer:addmsg(v)", element, function(v) return mtmsg.newbuffer().addmsg, mtmsg.newbuffer(), v end)
call("buffer:addmsg(1, v, 2)", function(v)
    if element(v) == "argerr" then return "argerr" end
    return "ok"
end, function(v) local b = mtmsg.newbuffer() return b.addmsg, b, 1, v, 2 end)
call("buffer:setmsg(v)", element, function(v) local b = mtmsg.newbuffer() return b.setmsg, b, v end)
call("buffer:nextmsg(v)", timeout, function(v) local b = withmsg(mtmsg.newbuffer()) return b.nextmsg, b, v end)
call("buffer:nextmsg(0, v)", only("nil", "carray"), function(v)
    local b = withmsg(mtmsg.newbuffer()) return b.nextmsg, b, 0, v
end)
call("buffer:nonblock(v)", flag, function(v) local b = mtmsg.newbuffer() return b.nonblock, b, v end)
call("buffer:abort(v)", flag, function(v) local b = mtmsg.newbuffer() return b.abort, b, v end)
call("buffer:notifier(v)", any, function(v) local b = mtmsg.newbuffer() return b.notifier, b, v end)
call("buffer:notifier(nil, v)", function(v)
    if v == nil or v == "<" or v == ">" then return "ok" end
    -- LuaJIT's luaL_checkoption takes any non-string, non-number as the default ">"
    if H.is_luajit and type(v) ~= "string" and type(v) ~= "number" then return "any" end
    return "argerr"
end, function(v) local b = mtmsg.newbuffer() return b.notifier, b, nil, v end)
call("buffer:notifier(buffer, '>', v)", function(v)
    local k = kind(v)
    if k == "nil" or k == "integer" then return "ok" end
    if k == "string" and tonumber(v) and tonumber(v) == math.floor(tonumber(v)) then return "ok" end
    return "argerr"
end, function(v) local b = mtmsg.newbuffer() return b.notifier, b, mtmsg.newbuffer(), ">", v end)
-- listener methods
call("listener:newbuffer(v)", name_or_size, function(v) local l = mtmsg.newlistener() return l.newbuffer, l, v end)
call("listener:newbuffer(16, v)", grow, function(v) local l = mtmsg.newlistener() return l.newbuffer, l, 16, v end)
call("listener:nextmsg(v)", timeout, function(v)
    local l = mtmsg.newlistener()
    local b = withmsg(l:newbuffer())
    return function(...) local keep = b return l.nextmsg(...) end, l, v
end)
call("listener:nonblock(v)", flag, function(v) local l = mtmsg.newlistener() return l.nonblock, l, v end)
call("listener:abort(v)", flag, function(v) local l = mtmsg.newlistener() return l.abort, l, v end)
-- writer methods
call("writer:add(v)", element, function(v) local w = mtmsg.newwriter() return w.add, w, v end)
call("writer:addmsg(v)", only("mtmsg.buffer"), function(v) local w = mtmsg.newwriter() return w.addmsg, w, v end)
call("writer:setmsg(v)", only("mtmsg.buffer"), function(v) local w = mtmsg.newwriter() return w.setmsg, w, v end)
-- reader methods
call("reader:next(v)", count, function(v)
    local b = mtmsg.newbuffer()
    b:addmsg(1, 2, 3)
    local r = mtmsg.newreader()
    r:nextmsg(b, 0)
    return r.next, r, v
end)
call("reader:next(1, v)", only("nil", "carray"), function(v)
    local r = mtmsg.newreader() return r.next, r, 1, v
end)
call("reader:nextmsg(v)", only("mtmsg.buffer", "mtmsg.listener"), function(v)
    if kind(v) == "mtmsg.buffer" then withmsg(v) end
    local r = mtmsg.newreader() return r.nextmsg, r, v, 0      -- (timeout 0: never blocks)
end)
call("reader:nextmsg(buffer, v)", only("nil", "integer", "fraction", "nan", "inf", "huge"), function(v)
    local r, b = mtmsg.newreader(), withmsg(mtmsg.newbuffer())
    return r.nextmsg, r, b, v
end)

-- metamethods, reached through debug.getmetatable (getmetatable is protected)
for _, sc in ipairs(selfcalls) do
    local tname, new = sc[1], sc[2]
    local mt = debug.getmetatable(new())
    for _, mm in ipairs({"__gc", "__tostring", "__close"}) do
        if mt[mm] then
            call(tname .. "." .. mm .. "(v)", function(v)
                if kind(v) == tname then return "any" end
                return "argerr"
            end, function(v) return mt[mm], v end)
        end
    end
end

local function classify_error(err)
    if type(err) ~= "string" then return "nonstring" end
    if err:find("^mtmsg%.error%.") then return "mtmsg" end
    if err:find("bad argument", 1, true) or err:find("bad self", 1, true) then return "argerr" end
    return "other"
end

describe("bad input", function()
    after_each(function() mtmsg.abort(false) end)

    for _, c in ipairs(calls) do
        it(c.name .. " for every kind of value", function()
            local n = 0
            for _, val in ipairs(values) do
                local vname, v = val[1], val[2]()
                local expect = c.class(v)
                local f = H.pack(c.make(v))
                local r = H.pack(pcall(f[1], unpack(f, 2, f.n)))
                mtmsg.abort(false)
                local what = c.name .. " with v = " .. vname
                if expect == "argerr" then
                    assert(not r[1], what .. ": expected an argument error, got success")
                    assert(classify_error(r[2]) == "argerr", what .. ": expected an argument error, got: " .. tostring(r[2]))
                elseif expect == "ok" then
                    assert(r[1] or classify_error(r[2]) == "mtmsg",
                           what .. ": expected success or an mtmsg error, got: " .. tostring(r[2]))
                else
                    assert(r[1] or classify_error(r[2]) == "mtmsg" or classify_error(r[2]) == "argerr",
                           what .. ": expected a clean error, got: " .. tostring(r[2]))
                end
                n = n + 1
            end
            H.gc()
            assert(n == #values)
        end)
    end

    it("everything still works after all that", function()
        H.gc()
        local b = mtmsg.newbuffer()
        assert(b:addmsg(1, "two") == true)
        local x, y = b:nextmsg(0)
        assert(x == 1 and y == "two")
        assert(mtmsg.isabort() == false)
    end)

    it("numbers beyond the integer range are argument errors everywhere", function()
        -- on 5.1/5.2/LuaJIT the conversion used to be undefined behaviour (inf -> 2^63)
        for _, v in ipairs({math.huge, -math.huge, BIG63, -BIG63 * 2, 1e300, NAN}) do
            H.checkargerr(nil, mtmsg.buffer, v)
            H.checkargerr(nil, mtmsg.listener, v)
            H.checkargerr(nil, mtmsg.newbuffer, v)
            H.checkargerr(nil, mtmsg.newwriter, v)
            H.checkargerr(nil, mtmsg.newreader, v)
        end
    end)

    it("absurd sizes give out_of_memory or message_size on use, not a crash", function()
        for _, s in ipairs({2 ^ 53, math.maxinteger or 2 ^ 53, 2 ^ 40}) do
            local b = mtmsg.newbuffer(s)
            local ok, err = pcall(b.addmsg, b, "x")
            assert(ok or tostring(err):find("^mtmsg%.error%.out_of_memory"), tostring(err))
            local f = mtmsg.newbuffer(s, 0)
            ok, err = pcall(f.addmsg, f, "x")
            assert(ok or tostring(err):find("^mtmsg%.error%.out_of_memory"), tostring(err))
            local w = mtmsg.newwriter(s)
            ok, err = pcall(w.add, w, "x")
            assert(ok or tostring(err):find("^mtmsg%.error%.out_of_memory"), tostring(err))
        end
    end)

    it("handles whose finalizer already ran raise argument errors", function()
        local objs = {mtmsg.newbuffer(), mtmsg.newlistener(), mtmsg.newwriter(), mtmsg.newreader()}
        for _, o in ipairs(objs) do
            local mt = debug.getmetatable(o)
            mt.__gc(o)
            mt.__gc(o)                                 -- twice is harmless
        end
        H.checkargerr(nil, objs[1].addmsg, objs[1], 1)
        H.checkargerr(nil, objs[1].nextmsg, objs[1], 0)
        H.checkargerr(nil, tostring, objs[1])
        H.checkargerr(nil, objs[2].nextmsg, objs[2], 0)
        H.checkargerr(nil, objs[3].addmsg, objs[3], objs[1])
        H.checkargerr(nil, objs[4].nextmsg, objs[4], objs[1])
        -- writers and readers have no shared object: they stay usable
        objs[3]:add(1)
        local b = mtmsg.newbuffer()
        assert(objs[3]:addmsg(b) == true)
        assert(objs[4]:nextmsg(b, 0) == true and objs[4]:next() == 1)
    end)

    it("sleep(inf) and nextmsg(inf) wait until aborted", function()
        local thread = H.thread()
        local sync = mtmsg.newbuffer()
        local b = mtmsg.newbuffer()
        local t1 = thread.start(function(sid)
            local mtmsg = require "mtmsg"
            mtmsg.buffer(sid):addmsg("ready")
            mtmsg.sleep(math.huge)
        end, sync:id())
        local t2 = thread.start(function(sid, bid)
            local mtmsg = require "mtmsg"
            local b = mtmsg.buffer(bid)
            mtmsg.buffer(sid):addmsg("ready")
            return b:nextmsg(math.huge)
        end, sync:id(), b:id())
        assert(sync:nextmsg(H.TIMEOUT) == "ready")
        assert(sync:nextmsg(H.TIMEOUT) == "ready")
        mtmsg.sleep(0.05)
        mtmsg.abort(true)
        H.joinerr(t1, "operation_aborted")
        H.joinerr(t2, "operation_aborted")
        mtmsg.abort(false)
    end)
end)
