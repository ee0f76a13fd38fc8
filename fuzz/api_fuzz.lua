-- fuzz/api_fuzz.lua: an API-level fuzzer for mtmsg, in Lua (Lua 5.1-5.4, LuaJIT).
--
-- Makes seeded random sequences of calls to every module function and every method
-- and metamethod of every class (found by walking the module table and the real
-- metatables, so new functions are fuzzed without editing this file), with a random
-- `self` (often of the wrong class) and 0-4 random arguments drawn from a pool of
-- every object kind (buffers, listeners, listener buffers, writers and readers with
-- content, closed, aborted, nonblocking, finalized, with notifiers; carrays; foreign
-- userdata; light userdata; functions, among them mtmsg's own C functions stripped of
-- their upvalues by a trip through a message; coroutines; tables) and edge values
-- (nil, booleans, 0, -1, 2^53, 2^63, NaN, +-inf, -0.0, empty, binary and huge strings).
-- Every call runs under pcall; an error must be a string. Garbage collections, and
-- finalizers that call the API (on objects already finalized, too), happen at random
-- points, also in the middle of mtmsg calls. A second thread (tests/mod/testthread.c)
-- toggles mtmsg.abort and adds and takes messages on the shared buffers, found by name
-- and id. Every blocking call is bounded (timeout 0 or 1 ms, or a nonblocking handle),
-- so the run never hangs. Meant to run under ASan+UBSan or TSan (scripts/apifuzz.sh).
--
-- Usage: lua fuzz/api_fuzz.lua [module-dir]   (module-dir: mtmsg.so, testthread.so
-- and, optional, carray.so; default build/5.4). Environment:
--   APIFUZZ_SEED=n       seed (default: from the clock; printed)
--   APIFUZZ_SECONDS=s    duration (default 10)
--   APIFUZZ_CALLS=n      stop after n calls as well (default: no limit)
--   APIFUZZ_THREAD=0     no second thread
--   APIFUZZ_THREADHANDLES=0  no testthread handles in the pool (each one starts and
--                        joins a short thread; scripts/apifuzz.sh sets this for TSan)
--   APIFUZZ_DEBUG=n      metamethods (__gc, __close, __tostring) called by hand, as
--                        the debug library allows (debug.getmetatable, getupvalue):
--                        0 never; 1 (default) not from finalizers; 2 from finalizers
--                        too, on objects that may be in use by the interrupted call
--                        (known to fail: docs/RELIABILITY.md)
-- The seed fixes the sequence of calls of the main thread; finalizer timing and the
-- second thread are not reproducible. Last line: "apifuzz: PASS ..." or an error.
local dir = arg and arg[1] or "build/5.4"
package.cpath = dir .. "/?.so;" .. package.cpath

local mtmsg = require "mtmsg"
local okthread, testthread = pcall(require, "testthread")
local okcarray, carray = pcall(require, "carray")
if not okcarray then carray = nil end

local SEED = tonumber(os.getenv("APIFUZZ_SEED") or "") or (os.time() % 2147483646 + 1)
local SECONDS = tonumber(os.getenv("APIFUZZ_SECONDS") or "") or 10
local MAXCALLS = tonumber(os.getenv("APIFUZZ_CALLS") or "") or math.huge
local USE_THREAD = os.getenv("APIFUZZ_THREAD") ~= "0" and okthread
local DEBUG = tonumber(os.getenv("APIFUZZ_DEBUG") or "") or 1
local USE_DEBUG = DEBUG > 0

local unpack = table.unpack or unpack
local VERSION = type(jit) == "table" and jit.version or _VERSION

-- ===== a portable PRNG (Park-Miller; exact in doubles on every Lua version) =====
local state = SEED % 2147483646 + 1
local function rnd(n)                   -- 1..n
    state = (16807 * state) % 2147483647
    return state % n + 1
end
local function chance(p) return rnd(1000000) <= p * 1000000 end
local function pick(t) return t[rnd(#t)] end

-- ===== figures =====
local stats = {calls = 0, errors = 0, finalizers = 0, fincalls = 0, collects = 0,
               replaced = 0, thread_ops = 0}
local errkinds = {}              -- "argument" | mtmsg error kind | "other" -> count
local findings = {}
local others = {}                -- samples of errors that are neither kind
local function finding(what)
    if #findings < 20 then findings[#findings + 1] = what end
    io.stderr:write("apifuzz: FINDING: ", what, "\n")
end

-- ===== the functions: module functions, methods, metamethods =====
local funcs = {}                 -- {name, f, class}
local blocking = {}              -- f -> argument position of its timeout (self is 1)
local classes = {}               -- class name -> sample metatable
local samples = {
    ["mtmsg.buffer"] = mtmsg.newbuffer(), ["mtmsg.listener"] = mtmsg.newlistener(),
    ["mtmsg.writer"] = mtmsg.newwriter(), ["mtmsg.reader"] = mtmsg.newreader(),
}
local function addfunc(name, f, class, meta)
    funcs[#funcs + 1] = {name = name, f = f, class = class, meta = meta}
end
for name, f in pairs(mtmsg) do
    if type(f) == "function" and name ~= "_failalloc" then addfunc("mtmsg." .. name, f) end
end
for class, o in pairs(samples) do
    local mt = debug.getmetatable(o)
    classes[class] = mt
    for name, f in pairs(mt.__index) do addfunc(class .. ":" .. name, f, class) end
    if USE_DEBUG then
        for _, name in ipairs({"__gc", "__close", "__tostring"}) do
            if mt[name] then addfunc(class .. "." .. name, mt[name], class, true) end
        end
    end
end
table.sort(funcs, function(a, b) return a.name < b.name end)   -- reproducible order
blocking[mtmsg.sleep] = 1
blocking[classes["mtmsg.buffer"].__index.nextmsg] = 2
blocking[classes["mtmsg.listener"].__index.nextmsg] = 2
blocking[classes["mtmsg.reader"].__index.nextmsg] = 3

-- The same C functions without their upvalues: a C function travels in a message as a
-- bare function pointer and comes back as a new C function with none.
do
    local b = mtmsg.newbuffer()
    local n = #funcs
    for i = 1, n do
        local fn = funcs[i]
        b:addmsg(fn.f)
        local g = b:nextmsg(0)
        if type(g) == "function" and g ~= fn.f then
            addfunc(fn.name .. "(stripped)", g, fn.class, fn.meta)
            if blocking[fn.f] then blocking[g] = blocking[fn.f] end
        end
    end
end

-- Light userdata, where reachable: the upvalues of mtmsg's methods (class metatable
-- address and class tag) through debug.getupvalue.
-- With APIFUZZ_DEBUG, also the module's internal work buffers (full userdata in the
-- upvalues) and their __gc.
local lights, internals = {}, {}
for _, fn in ipairs(funcs) do
    for i = 1, 4 do
        local ok, name, v = pcall(debug.getupvalue, fn.f, i)
        if ok and name and type(v) == "userdata" then
            -- type() cannot tell light from full userdata: a light one has no metatable
            local mt = debug.getmetatable(v)
            if mt == nil and #lights < 8 then lights[#lights + 1] = v end
            if mt and USE_DEBUG and #internals < 8 then
                internals[#internals + 1] = v
                if #internals == 1 and mt.__gc then addfunc("workbuffer.__gc", mt.__gc, nil, true) end
            end
        end
    end
end

-- ===== edge values =====
local HUGE = string.rep("H", 1024 * 1024)
local BIN = "\0\1\2\255\254\0x\r\n"
local edges = {
    true, false, 0, -1, 1, 2, 3, 7, 100, 2 ^ 20, 2 ^ 53, -2 ^ 53, 2 ^ 63, -2 ^ 63, 0 / 0,
    1 / 0, -1 / 0, -0.0, 0.5, 1e-3, -1e-3, math.maxinteger or 2 ^ 53,
    math.mininteger or -2 ^ 53, "", "x", ">", "<", "apifuzz.1", "apifuzz.2", BIN,
    string.rep("a", 1000), "12", "0x10", "-1", "mtmsg.buffer", "default", "readonly",
    "int", "double", "unsigned char",
}
local function edge()
    local r = rnd(#edges + 8)
    if r <= #edges then return edges[r] end
    r = r - #edges
    if r == 1 then return nil end
    if r == 2 then return {} end
    if r == 3 then return {1, "x", {}} end
    if r == 4 then return print end
    if r == 5 then return function() return 1 end end
    if r == 6 then return coroutine.create(function() end) end
    if r == 7 then return chance(0.1) and HUGE or string.rep("\0", rnd(70000)) end
    if #internals > 0 and chance(0.3) then return pick(internals) end
    return #lights > 0 and pick(lights) or nil
end

-- ===== objects =====
local NAMES = {"apifuzz.1", "apifuzz.2", "apifuzz.3", "apifuzz.4"}
local ids = {}                   -- ids seen, for lookups by id
local function seen(o)
    local ok, id = pcall(function() return o:id() end)
    if ok and type(id) == "number" and #ids < 64 then ids[#ids + 1] = id end
    return o
end
local function newbuf()
    if chance(0.4) then return seen(mtmsg.newbuffer(pick(NAMES), pick({1024, 64, 0, 1 / 0}), pick({2, 0, 1.5}))) end
    return seen(mtmsg.newbuffer())
end
local function finalize(o)
    debug.getmetatable(o).__gc(o)
    return o
end
local pool = {}
local function anyvalue()
    if chance(0.6) and #pool > 0 then return pool[rnd(#pool)] end
    return edge()
end
local makers = {
    function() return newbuf() end,
    function() local b = newbuf(); pcall(b.addmsg, b, anyvalue(), anyvalue()); return b end,
    function() local b = newbuf(); b:close(); return b end,
    function() local b = newbuf(); b:abort(true); return b end,
    function() local b = newbuf(); pcall(b.nonblock, b, true); return b end,
    function() local b = newbuf(); pcall(b.notifier, b, newbuf(), pick({">", "<"}), rnd(3) - 1); return b end,
    function() return seen(mtmsg.newlistener(chance(0.5) and pick(NAMES) or nil)) end,
    function() local l = seen(mtmsg.newlistener()); seen(l:newbuffer()):addmsg(1, "l"); return l end,
    function() local l = mtmsg.newlistener(); l:close(); return l end,
    function() local l = mtmsg.newlistener(); l:abort(true); return l end,
    function() local l = mtmsg.newlistener(); pcall(l.nonblock, l, true); return l end,
    function() return seen(mtmsg.newlistener():newbuffer(chance(0.5) and pick(NAMES) or nil)) end,
    function() local l = mtmsg.newlistener(); local b = l:newbuffer(); l:close(); return b end,
    function() return mtmsg.newwriter(pick({1024, 16, 0}), pick({2, 0})) end,
    function()
        local w = mtmsg.newwriter()
        pcall(w.add, w, anyvalue(), 1, "w", true, chance(0.1) and HUGE or BIN)
        return w
    end,
    function() return mtmsg.newreader() end,
    function()
        local b, r = mtmsg.newbuffer(), mtmsg.newreader()
        b:addmsg(1, "r", false, 2.5, BIN)
        if carray then b:addmsg(carray.new("int", 3), "after") end
        r:nextmsg(b, 0)
        return r
    end,
    function() return finalize(newbuf()) end,
    function() return finalize(mtmsg.newlistener()) end,
    function() local w = mtmsg.newwriter(); w:add(1); return finalize(w) end,
    function()
        local b, r = mtmsg.newbuffer(), mtmsg.newreader()
        b:addmsg(1, 2, 3); r:nextmsg(b, 0); r:next(); return finalize(r)
    end,
    function() return io.stdout end,
    function() return edge() end,
    function() return ids[1] and pick(ids) or 1 end,
    function() return pick(funcs).f end,
}
if carray then
    local types = {"int", "double", "unsigned char", "long long", "float", "short"}
    makers[#makers + 1] = function() return carray.new(pick(types), rnd(4) - 1) end
    makers[#makers + 1] = function() return carray.new(pick(types), rnd(3), "readonly") end
    makers[#makers + 1] = function() return carray.newnoapi() end
    makers[#makers + 1] = function()
        return setmetatable({}, {_capi_carray = debug.getmetatable(carray.new("int", 1))._capi_carray})
    end
end
if okthread and os.getenv("APIFUZZ_THREADHANDLES") ~= "0" then
    makers[#makers + 1] = function() local t = testthread.start(function() end); t:join(5); return t end
end
makers[#makers + 1] = function()
    local mt = debug.getmetatable(samples["mtmsg.buffer"])
    return setmetatable({}, {_capi_notify = mt._capi_notify, _capi_sender = mt._capi_sender,
                             _capi_receiver = mt._capi_receiver})
end

local POOLSIZE = 40
local function replace(i)
    local ok, v = pcall(pick(makers))
    if ok then pool[i] = v ~= nil and v or false else pool[i] = false end
    stats.replaced = stats.replaced + 1
end
for i = 1, POOLSIZE do replace(i) end

-- ===== one call =====
local infinalizer = 0
local spent = {}                 -- function name -> seconds spent in it
local function onecall()
    local fn = pick(funcs)
    while fn.meta and infinalizer > 0 and DEBUG < 2 do fn = pick(funcs) end
    local args, n = {}, 0
    -- self: mostly an object of the function's class (to get past the first check)
    if fn.class and chance(0.55) then
        for _ = 1, 6 do
            local v = pool[rnd(#pool)]
            if mtmsg.type(v) == fn.class then args[1] = v; break end
        end
        if args[1] == nil then args[1] = anyvalue() end
        n = 1
    elseif chance(0.9) then
        args[1] = anyvalue(); n = 1
    end
    -- arguments: objects and edge values, or (to get past argument checks more often)
    -- edge values only
    local gen = chance(0.4) and edge or anyvalue
    for _ = 1, rnd(5) - 1 do n = n + 1; args[n] = gen() end
    -- bound every blocking call: a timeout of 0 or 1 ms where none or a longer one is given
    local tpos = blocking[fn.f]
    if tpos then
        local v = args[tpos]
        local t = type(v)
        local num = tonumber(v)          -- mtmsg.sleep takes numeric strings too
        if v == nil or num or (t == "userdata" and mtmsg.type(v) ~= "mtmsg.buffer") then
            if not (num and num <= 0.001) then
                args[tpos] = pick({0, 0, 0.001, -1, 0 / 0, -1 / 0, -0.0})
                if n < tpos then n = tpos end
            end
        end
    end
    stats.calls = stats.calls + 1
    if infinalizer > 0 then stats.fincalls = stats.fincalls + 1 end
    local t0 = mtmsg.time()
    local r = {pcall(fn.f, unpack(args, 1, n))}
    local dt = mtmsg.time() - t0
    spent[fn.name] = (spent[fn.name] or 0) + dt
    if dt > 10 then                     -- a hang: every blocking call is bounded
        local a = {}
        for i = 1, n do a[i] = tostring(args[i]) end
        finding(("%s(%s) took %.1f s"):format(fn.name, table.concat(a, ", "), dt))
    end
    if not r[1] then
        stats.errors = stats.errors + 1
        local e = r[2]
        local ek = type(e) ~= "string" and "non-string"
                   or e:match("^mtmsg%.error%.([%w_]+)")
                   or ((e:find("bad argument", 1, true) or e:find("bad self", 1, true)) and "argument")
                   or (e:find("calling notifier", 1, true) and "notifier")
                   or "other"
        errkinds[ek] = (errkinds[ek] or 0) + 1
        if ek == "other" and #others < 5 then others[#others + 1] = fn.name .. ": " .. e:sub(1, 120) end
        if type(r[2]) ~= "string" then
            finding(fn.name .. " raised a " .. type(r[2]) .. " (" .. tostring(r[2]) .. ")")
        end
    else
        -- keep some results: readers' and nextmsg's values, new handles
        for i = 2, #r do
            if r[i] ~= nil and chance(0.05) then pool[rnd(#pool)] = r[i] end
        end
    end
end

-- ===== finalizers that call the API =====
local newgcobj
if _VERSION == "Lua 5.1" or type(jit) == "table" then
    newgcobj = function(f)           -- no __gc on tables: a proxy userdata
        local p = newproxy(true)
        getmetatable(p).__gc = function() f(p) end
        return p
    end
else
    newgcobj = function(f) return setmetatable({}, {__gc = f}) end
end
local stopping = false           -- set at shutdown: finalizers do nothing then
local held = {}                  -- victims of proxies (5.1: a proxy has no fields)
local function bomb()
    local victims = {}
    local o
    o = newgcobj(function()
        if stopping then return end
        stats.finalizers = stats.finalizers + 1
        infinalizer = infinalizer + 1
        local saved = state
        for _ = 1, rnd(3) do
            -- call the API with the victims (finalized before us) as self and arguments
            local v = victims[rnd(#victims + 1)]
            if v ~= nil and chance(0.7) then pool[rnd(#pool)] = v end
            onecall()
        end
        if chance(0.3) then collectgarbage("step") end
        infinalizer = infinalizer - 1
        state = (saved + state) % 2147483646 + 1
    end)
    -- victims made after the finalizer object: collected together, their own __gc
    -- runs first (finalizers run in reverse order of creation)
    for _ = 1, rnd(3) do
        local ok, v = pcall(pick(makers))
        if ok and v ~= nil then victims[#victims + 1] = v end
    end
    held[#held + 1] = victims
    if #held > 64 then table.remove(held, 1) end
    return o
end

-- ===== the second thread =====
local worker
local CTL = "apifuzz.ctl." .. SEED
local ctl = mtmsg.newbuffer(CTL)
if USE_THREAD then
    worker = testthread.start(function(seed, deadline, ctlname, ...)
        local m = require "mtmsg"
        local names = {...}
        local s = seed % 2147483646 + 1
        local function r(n) s = (16807 * s) % 2147483647; return s % n + 1 end
        local ops, stop = 0, false
        -- the main thread may have set the global abort flag already (lookups then raise
        -- operation_aborted, as documented): clear it until the lookup succeeds
        local okc, c = pcall(m.buffer, ctlname)
        while not okc do
            m.abort(false)
            okc, c = pcall(m.buffer, ctlname)
        end
        local vals = {1, "x", true, 2.5, "", string.rep("y", 300), 0 / 0}
        while not stop and m.time() < deadline do
            ops = ops + 1
            local k = r(20)
            pcall(function()
                if k == 1 then m.abort(true); m.sleep(0.0005); m.abort(false)
                elseif k == 2 then m.abort(false)
                elseif k <= 7 then m.buffer(names[r(#names)]):addmsg(vals[r(#vals)], vals[r(#vals)])
                elseif k <= 10 then m.buffer(names[r(#names)]):nextmsg(0)
                elseif k == 11 then m.buffer(r(64)):addmsg(ops)
                elseif k == 12 then m.buffer(r(64)):nextmsg(0)
                elseif k == 13 then m.listener(names[r(#names)]):nextmsg(0)
                elseif k == 14 then
                    local w = m.newwriter(); w:add(ops, "w"); w:addmsg(m.buffer(names[r(#names)]))
                elseif k == 15 then
                    local rd = m.newreader()
                    if rd:nextmsg(m.buffer(names[r(#names)]), 0) then rd:next(3) end
                elseif k == 16 then m.buffer(names[r(#names)]):setmsg(ops)
                elseif k == 17 then m.newbuffer(names[r(#names)]):addmsg(1)
                elseif k == 18 then m.buffer(names[r(#names)]):clear()
                elseif k == 19 then collectgarbage("step")
                else
                    if c:nextmsg(0) == "stop" then stop = true end
                end
            end)
        end
        m.abort(false)
        return ops
    end, SEED, mtmsg.time() + SECONDS + 2, CTL, unpack(NAMES))
end

-- ===== the run =====
pcall(collectgarbage, "setpause", 100)   -- frequent collections (5.1-5.3; 5.4 incremental)
if _VERSION == "Lua 5.4" then collectgarbage("incremental", 100, 400) end
local t0 = os.clock()
local w0 = mtmsg.time()
local deadline = w0 + SECONDS
local keep = {}
while stats.calls < MAXCALLS do
    if stats.calls % 64 == 0 and mtmsg.time() >= deadline then break end
    local k = rnd(100)
    if k <= 8 then
        replace(rnd(POOLSIZE))
    elseif k <= 11 then
        keep[rnd(8)] = bomb()            -- dropped when overwritten
    elseif k == 12 then
        collectgarbage(chance(0.2) and "collect" or "step"); stats.collects = stats.collects + 1
    elseif k == 13 then                  -- a few calls while aborted
        mtmsg.abort(true)
        for _ = 1, rnd(3) do onecall() end
        mtmsg.abort(false)
    else
        onecall()
    end
end
local cpu = os.clock() - t0

-- ===== shutdown =====
stopping = true
mtmsg.abort(false)
local thread_ok = true
if worker then
    pcall(ctl.addmsg, ctl, "stop")
    local ok, ops = worker:join(SECONDS + 30)
    if ok ~= true then
        thread_ok = false
        finding("second thread: " .. tostring(ok) .. " " .. tostring(ops))
    else
        stats.thread_ops = ops
    end
end
mtmsg.abort(false)
pool, keep, held = {}, {}, {}
collectgarbage("collect")
collectgarbage("collect")
local wall = mtmsg.time() - w0

local top = {}
for k, v in pairs(spent) do top[#top + 1] = {k, v} end
table.sort(top, function(a, b) return a[2] > b[2] end)
local tops = {}
for i = 1, math.min(5, #top) do tops[i] = ("%s %.2f s"):format(top[i][1], top[i][2]) end
print("apifuzz: slowest functions: " .. table.concat(tops, ", "))
local ek = {}
for k, v in pairs(errkinds) do ek[#ek + 1] = k .. "=" .. v end
table.sort(ek)
print("apifuzz: errors by kind: " .. table.concat(ek, " "))
for _, o in ipairs(others) do print("apifuzz: other error: " .. o) end
print(("apifuzz: light userdata=%d internal userdata=%d"):format(#lights, #internals))
print(("apifuzz: seed=%d lua=%s thread=%s debug=%d calls=%d errors=%d finalizers=%d "
       .. "finalizer_calls=%d collects=%d replaced=%d thread_ops=%d functions=%d "
       .. "seconds=%.1f cpu=%.1f"):format(SEED, VERSION, tostring(USE_THREAD and true or false),
       DEBUG, stats.calls, stats.errors, stats.finalizers, stats.fincalls,
       stats.collects, stats.replaced, stats.thread_ops, #funcs, wall, cpu))
if #findings > 0 or not thread_ok then
    error("apifuzz: FAIL (" .. #findings .. " findings, seed " .. SEED .. "): "
          .. table.concat(findings, "; "))
end
print("apifuzz: PASS")
