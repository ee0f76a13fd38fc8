-- mtmsg benchmark suite (run by bench/run.sh; see docs/BENCHMARKS.md).
-- Every scenario checks what it receives (count, order, content), so a fast wrong
-- answer fails. Each measurement runs RUNS times, interleaved (run 1 of everything,
-- then run 2, ...), and every figure is reported as a ratio to a baseline measured
-- in the same run: the Lua-call floor (S1), plain C with pthreads (S2-S5), or the
-- same lookup with fewer names (S6).
--
-- Environment: BENCH_RUNS (default 5), BENCH_SCALE (default 1; 0.1 for a smoke run),
-- BENCH_OUT (directory of results.csv/results.md/plot.dat, default bench),
-- BENCH_ONLY (comma-separated scenario ids, e.g. "S1,S3" or "SW" for the producer sweep;
-- ratios of the others are skipped), BENCH_SWEEP (the sweep's producer counts, default
-- "1,2,4,8,15"), BENCH_NOSPIN_SWEEP (0: no spin-off rows in the sweep),
-- BENCH_ALT_CPATH (another build of the module, e.g. '/tmp/before/?.so': every mtmsg
-- measurement also runs with it, as a "-before" row; see "Before and after" below).
local mtmsg = require "mtmsg"
local MTMSG_SO = package.searchpath("mtmsg", package.cpath)   -- the file it came from
-- A child process measuring another build loads mtmsg from that build (LUA_CPATH; the
-- threads get the same package.cpath) and the helper modules from this one
-- (BENCH_BASE_CPATH), so that only the module differs.
local function require_helper(name)
    local base = os.getenv("BENCH_BASE_CPATH")
    if not base then return require(name) end
    local file = assert(package.searchpath(name, base))
    package.loaded[name] = assert(package.loadlib(file, "luaopen_" .. name))(name, file)
    return package.loaded[name]
end
local thread = require_helper "testthread"
local cbase = require_helper "cbase"
local floor = require_helper "floor"

local now = cbase.now
local RUNS = tonumber(os.getenv("BENCH_RUNS")) or 5
local SCALE = tonumber(os.getenv("BENCH_SCALE")) or 1
local OUT = os.getenv("BENCH_OUT") or "bench"
local ONLY = os.getenv("BENCH_ONLY")
local WAIT = 60      -- seconds a thread handshake may take before we call it a hang

local function scaled(n, multiple)
    multiple = multiple or 1
    local v = math.floor(n * SCALE / multiple + 0.5) * multiple
    return v < multiple and multiple or v
end

local N1 = scaled(1000000)          -- S1 pairs
local N2 = scaled(2000000)          -- S2 messages
local N3 = scaled(200000)           -- S3 round trips
local N4 = scaled(2000000, 4)       -- S4 messages, 4 producers
local N5 = scaled(16384)            -- S5 messages of SIZE5 bytes
local SIZE5 = 65536
-- S5 flow control: at most WINDOW5 messages (4 MiB) in flight, the consumer
-- acknowledges every ACK5-th (BENCH_S5_WINDOW=16384 makes the queue unbounded).
local WINDOW5 = tonumber(os.getenv("BENCH_S5_WINDOW")) or 64
local ACK5 = 16
local M6 = scaled(200000)           -- S6 lookups per measurement
local NPROD = 4
-- Producer sweep (SW): P producers, one listener buffer each -> one listener, NSW
-- messages in all; each P also with spinning off (MTMSG_NOSPIN=1, in a child process).
local NSW = scaled(1200000, 120)    -- divisible by 1..6, 8, 10, 12, 15
local SWEEP = {}
for w in (os.getenv("BENCH_SWEEP") or "1,2,4,8,15"):gmatch("%d+") do SWEEP[#SWEEP + 1] = tonumber(w) end
local NOSPIN_ROWS = os.getenv("BENCH_NOSPIN_SWEEP") ~= "0"

-- ===== Thread plumbing =====

-- Starts one thread per spec {f, args...}; each thread's function gets (readyid, goid,
-- args...) and must call ready_go(readyid, goid) before its timed work. Returns the
-- threads, the start time and the process CPU time, taken when all are ready, right
-- before they are let go.
local function launch(specs)
    local ready, go = mtmsg.newbuffer(), mtmsg.newbuffer()
    local ths = {}
    for k, spec in ipairs(specs) do
        ths[k] = thread.start(spec[1], ready:id(), go:id(), table.unpack(spec, 2))
    end
    -- a thread that fails before it is ready fails the run with its message
    local started, deadline = 0, now() + WAIT
    while started < #specs do
        if ready:nextmsg(0.1) ~= nil then
            started = started + 1
        else
            for _, t in ipairs(ths) do
                if t:isdone() then
                    local ok, err = t:join()
                    if ok ~= true then error("benchmark thread failed: " .. tostring(err)) end
                end
            end
            if now() > deadline then error("a benchmark thread did not start") end
        end
    end
    local c0, t0 = cbase.proccpu(), now()
    for _ = 1, #specs do go:addmsg(true) end
    return ths, t0, c0
end

local function join(ths)
    for _, t in ipairs(ths) do
        local ok, err = t:join(WAIT)
        if ok ~= true then error("benchmark thread failed: " .. tostring(err)) end
    end
end

-- The thread functions below run in fresh Lua states: no upvalues, require what they use.

local function producer(readyid, goid, bid, n, tag)
    local mtmsg = require "mtmsg"
    local b = mtmsg.buffer(bid)
    mtmsg.buffer(readyid):addmsg(true)
    mtmsg.buffer(goid):nextmsg()
    for i = 1, n do b:addmsg(tag, i, true) end
    return true
end

local function ponger(readyid, goid, pingid, pongid, n)
    local mtmsg = require "mtmsg"
    local ping, pong = mtmsg.buffer(pingid), mtmsg.buffer(pongid)
    mtmsg.buffer(readyid):addmsg(true)
    mtmsg.buffer(goid):nextmsg()
    for i = 1, n do
        local s, j, t = ping:nextmsg()
        if j ~= i then error("S3 pong: got " .. tostring(j) .. ", expected " .. i) end
        pong:addmsg(s, j, t)
    end
    return true
end

local function bigproducer(readyid, goid, bid, ackid, n, size, window)
    local mtmsg = require "mtmsg"
    local b, ack = mtmsg.buffer(bid), mtmsg.buffer(ackid)
    local s = string.rep("abcdefghijklmnopqrstuvwxyz", size // 26 + 1):sub(1, size)
    local acked = 0
    mtmsg.buffer(readyid):addmsg(true)
    mtmsg.buffer(goid):nextmsg()
    for i = 1, n do
        while i - acked > window do acked = ack:nextmsg() end
        b:addmsg(i, s)
    end
    return true
end

local function idlewaiter(readyid, goid, bid)
    local mtmsg = require "mtmsg"
    local cbase = require "cbase"
    local b = mtmsg.buffer(bid)
    mtmsg.buffer(readyid):addmsg(true)
    local c0 = cbase.threadcpu()
    local msg = b:nextmsg()
    return cbase.threadcpu() - c0, msg
end

-- ===== Scenarios: each returns one figure =====

local function bad(what, got, want)
    error(("%s: wrong message: got %s, expected %s"):format(what, tostring(got), tostring(want)), 2)
end

-- S1: one thread, addmsg + nextmsg pairs; ns per pair.
local function s1_mtmsg()
    local n = N1
    local b = mtmsg.newbuffer()
    local t0 = now()
    for i = 1, n do
        b:addmsg("hello", i, true)
        local s, j, t = b:nextmsg()
        if j ~= i or s ~= "hello" or t ~= true then bad("S1", j, i) end
    end
    local t1 = now()
    if b:msgcnt() ~= 0 then bad("S1 count", b:msgcnt(), 0) end
    return (t1 - t0) / n * 1e9
end

-- S1 floor: the same loop over a C function that keeps and returns the three values.
local function s1_floor()
    local n = N1
    local f = floor.f
    local t0 = now()
    for i = 1, n do
        f("hello", i, true)
        local s, j, t = f()
        if j ~= i or s ~= "hello" or t ~= true then bad("S1 floor", j, i) end
    end
    local t1 = now()
    return (t1 - t0) / n * 1e9
end

-- S1 with the methods in locals (no method lookup per call): not a target, it shows
-- how much of S1 is the `b:method` dispatch.
local function s1_local()
    local n = N1
    local b = mtmsg.newbuffer()
    local addmsg, nextmsg = b.addmsg, b.nextmsg
    local t0 = now()
    for i = 1, n do
        addmsg(b, "hello", i, true)
        local s, j, t = nextmsg(b)
        if j ~= i or s ~= "hello" or t ~= true then bad("S1 local", j, i) end
    end
    local t1 = now()
    return (t1 - t0) / n * 1e9
end

-- S2: producer thread -> main thread; messages/s.
local function s2_mtmsg()
    local n = N2
    local b = mtmsg.newbuffer()
    local ths, t0 = launch({ { producer, b:id(), n, "hello" } })
    for i = 1, n do
        local s, j, t = b:nextmsg()
        if j ~= i or s ~= "hello" or t ~= true then bad("S2", j, i) end
    end
    local t1 = now()
    join(ths)
    if b:msgcnt() ~= 0 then bad("S2 count", b:msgcnt(), 0) end
    return n / (t1 - t0)
end

local function s2_c() return N2 / cbase.s2(N2) end

-- S3: ping-pong over two buffers; microseconds per round trip.
local function s3_mtmsg()
    local n = N3
    local ping, pong = mtmsg.newbuffer(), mtmsg.newbuffer()
    local ths, t0 = launch({ { ponger, ping:id(), pong:id(), n } })
    for i = 1, n do
        ping:addmsg("hello", i, true)
        local s, j, t = pong:nextmsg()
        if j ~= i or s ~= "hello" or t ~= true then bad("S3", j, i) end
    end
    local t1 = now()
    join(ths)
    return (t1 - t0) / n * 1e6
end

local function s3_c() return cbase.s3(N3) / N3 * 1e6 end

-- S4 and the sweep: nprod producers, one listener buffer each -> one listener, n
-- messages in all; messages/s and process CPU microseconds per message (all threads,
-- from the start signal to the last message taken).
local function fanin_mtmsg(n, nprod)
    local l = mtmsg.newlistener()
    local specs, bufs, tagof, last = {}, {}, {}, {}
    for p = 1, nprod do
        bufs[p] = l:newbuffer()
        tagof["hell" .. p] = p
        last[p] = 0
        specs[p] = { producer, bufs[p]:id(), n // nprod, "hell" .. p }
    end
    local ths, t0, c0 = launch(specs)
    for _ = 1, n do
        local s, j, t = l:nextmsg()
        local p = tagof[s]
        if not p or t ~= true or j ~= last[p] + 1 then bad("S4", j, p and last[p] + 1) end
        last[p] = j
    end
    local t1, c1 = now(), cbase.proccpu()
    join(ths)
    for p = 1, nprod do
        if last[p] ~= n // nprod then bad("S4 count", last[p], n // nprod) end
    end
    return n / (t1 - t0), (c1 - c0) / n * 1e6
end

local function fanin_c(n, nprod)
    local wall, cpu = cbase.s4(n, nprod)
    return n / wall, cpu / n * 1e6
end

local function s4_mtmsg() return fanin_mtmsg(N4, NPROD) end
local function s4_c() return fanin_c(N4, NPROD) end

-- ===== Child processes =====
-- The sweep runs in child processes that print their figures: as is, with spinning off
-- (MTMSG_NOSPIN=1: the module reads it once), or with another build (BENCH_ALT_CPATH).
-- With BENCH_ALT_CPATH, every other mtmsg measurement runs in child processes too, one
-- per build (see "Before and after" below). A child that fails fails the run.
local LUA_EXE = (function()
    local k = -1
    while arg and arg[k - 1] do k = k - 1 end
    return arg and arg[k] or "lua5.4"
end)()
local function shq(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local SELF_CPATH = os.getenv("LUA_CPATH") or package.cpath
local SELF_SO = MTMSG_SO
local ALT = os.getenv("BENCH_ALT_CPATH")
if ALT == "" then ALT = nil end
local ALT_SO = ALT and package.searchpath("mtmsg", ALT)
if ALT and not ALT_SO then error("BENCH_ALT_CPATH: no mtmsg module in " .. ALT, 0) end
local ALT_ENV = ALT and ("LUA_CPATH=%s BENCH_BASE_CPATH=%s"):format(shq(ALT .. ";" .. SELF_CPATH),
                                                                    shq(package.cpath))

-- Runs the measurement `key` in a child process with the extra environment `env`;
-- returns its figure, its CPU us per message (or nil) and the cores it used. `so` is
-- the mtmsg file the child must have loaded.
local function child(key, env, so)
    local label = so == SELF_SO and key or key .. " (" .. so .. ")"
    local cmd = ("%s BENCH_ALT_CPATH= BENCH_CHILD=%s %s %s 2>&1"):format(env, shq(key), LUA_EXE,
                                                                    shq(arg and arg[0] or "bench/bench.lua"))
    local f = assert(io.popen(cmd, "r"))
    local out = f:read("a")
    local ok, how, code = f:close()
    local v, cpu, cores, from = ("\n" .. out):match("\nchild (%S+) (%S+) (%S+) ([^\n]*)\n")
    if not ok or not v then
        error(("child %s failed (%s %s): %s"):format(label, tostring(how), tostring(code), out), 0)
    end
    if from ~= so then error(("child %s loaded mtmsg from %s"):format(label, from), 0) end
    return tonumber(v), tonumber(cpu), tonumber(cores)
end

local function fanin_child(n, nprod, env, so)
    local v, cpu = child(("fanin,%d,%d"):format(n, nprod), env, so or SELF_SO)
    if not cpu then error("sweep child: no CPU figure", 0) end
    return v, cpu, v * cpu / 1e6              -- cores: CPU per message * messages/s
end

local function fanin_nospin(n, nprod) return fanin_child(n, nprod, "MTMSG_NOSPIN=1") end
local function fanin_alt(n, nprod) return fanin_child(n, nprod, ALT_ENV, ALT_SO) end

-- S5: SIZE5-byte strings, producer -> consumer, with flow control (a bounded queue:
-- unbounded, the run measures how fast the queue memory grows, not the transfer);
-- MiB/s.
local function s5_mtmsg()
    local n, size = N5, SIZE5
    local ref = string.rep("abcdefghijklmnopqrstuvwxyz", size // 26 + 1):sub(1, size)
    local b, ack = mtmsg.newbuffer(), mtmsg.newbuffer()
    local ths, t0 = launch({ { bigproducer, b:id(), ack:id(), n, size, WINDOW5 } })
    for i = 1, n do
        local j, s = b:nextmsg()
        if j ~= i or #s ~= size then bad("S5", j, i) end
        if i % 256 == 0 and s ~= ref then bad("S5 content", "other bytes", "the pattern") end
        if i % ACK5 == 0 then ack:addmsg(i) end
    end
    local t1 = now()
    join(ths)
    return n * size / 1048576 / (t1 - t0)
end

local function s5_c() return N5 * SIZE5 / 1048576 / cbase.s5(N5, SIZE5, WINDOW5, ACK5) end

-- S6: mtmsg.buffer(name) with nnames named buffers alive; microseconds per lookup.
-- With luatable set, the same loop looks the names up in a Lua table instead: what
-- touching that many distinct strings in this order costs Lua itself (no target).
local s6_serial = 0
local function s6(nnames, luatable)
    local m = M6
    s6_serial = s6_serial + 1
    local prefix = "bench.s6." .. s6_serial .. "."
    local names, keep, ids = {}, {}, {}
    for k = 1, nnames do
        names[k] = prefix .. k
        keep[k] = mtmsg.newbuffer(names[k])
        ids[k] = keep[k]:id()
    end
    collectgarbage()
    local idx = 1
    local step = 7919 % nnames        -- a fixed, scattered visiting order
    if step == 0 then step = 1 end
    local lookup = mtmsg.buffer
    if luatable then
        local byname = {}
        for k = 1, nnames do byname[names[k]] = keep[k] end
        lookup = function(name) return byname[name] end
        collectgarbage()
    end
    local t0 = now()
    for k = 1, m do
        local h = lookup(names[idx])
        if k % 97 == 0 and h:id() ~= ids[idx] then bad("S6", h:id(), ids[idx]) end
        idx = idx + step
        if idx > nnames then idx = idx - nnames end
    end
    local t1 = now()
    keep, names, ids = nil, nil, nil
    collectgarbage()
    return (t1 - t0) / m * 1e6
end

-- ===== Measurements, ratios, targets =====

local measures = {
    { id = "S1", name = "mtmsg", unit = "ns/pair", f = s1_mtmsg },
    { id = "S1", name = "floor", unit = "ns/pair", f = s1_floor },
    { id = "S1", name = "mtmsg-localmethods", unit = "ns/pair", f = s1_local },
    { id = "S2", name = "mtmsg", unit = "msg/s", f = s2_mtmsg },
    { id = "S2", name = "C", unit = "msg/s", f = s2_c },
    { id = "S3", name = "mtmsg", unit = "us/roundtrip", f = s3_mtmsg },
    { id = "S3", name = "C", unit = "us/roundtrip", f = s3_c },
    { id = "S4", name = "mtmsg", unit = "msg/s", f = s4_mtmsg },
    { id = "S4", name = "C", unit = "msg/s", f = s4_c },
    { id = "S5", name = "mtmsg", unit = "MiB/s", f = s5_mtmsg },
    { id = "S5", name = "C", unit = "MiB/s", f = s5_c },
    { id = "S6", name = "mtmsg-100", unit = "us/lookup", f = function() return s6(100) end },
    { id = "S6", name = "mtmsg-100000", unit = "us/lookup", f = function() return s6(100000) end },
    { id = "S6", name = "luatable-100", unit = "us/lookup", f = function() return s6(100, true) end },
    { id = "S6", name = "luatable-100000", unit = "us/lookup", f = function() return s6(100000, true) end },
}
-- Before and after (BENCH_ALT_CPATH): each mtmsg measurement runs in a child process
-- with this build and, right after it, in one with the other build (row "<name>-before"),
-- so that both start from the same state and meet the same load; the baselines (C,
-- floor, Lua table) run once, shared.
if ALT then
    local both = {}
    for _, m in ipairs(measures) do
        local key = m.id .. "." .. m.name
        if m.name:match("^mtmsg") then
            both[#both + 1] = { id = m.id, name = m.name, unit = m.unit, own = m.f,
                                f = function() return child(key, "", SELF_SO) end }
            both[#both + 1] = { id = m.id, name = m.name .. "-before", unit = m.unit, before = true,
                                f = function() return child(key, ALT_ENV, ALT_SO) end }
        else
            both[#both + 1] = m
        end
    end
    measures = both
end
for _, p in ipairs(SWEEP) do
    if p < 1 or p > 16 or NSW % p ~= 0 then error("BENCH_SWEEP: 1..16 producers dividing " .. NSW) end
    local sfx = "-P" .. p
    -- every mtmsg row of the sweep in a fresh child process, so that the variants
    -- (spin on, spin off, another build) start from the same state
    table.insert(measures, { id = "SW", name = "mtmsg" .. sfx, unit = "msg/s",
                             f = function() return fanin_child(NSW, p, "") end })
    if ALT then
        table.insert(measures, { id = "SW", name = "mtmsg" .. sfx .. "-before", unit = "msg/s", before = true,
                                 f = function() return fanin_alt(NSW, p) end })
    end
    if NOSPIN_ROWS then
        table.insert(measures, { id = "SW", name = "nospin" .. sfx, unit = "msg/s",
                                 f = function() return fanin_nospin(NSW, p) end })
    end
    table.insert(measures, { id = "SW", name = "C" .. sfx, unit = "msg/s",
                             f = function() return fanin_c(NSW, p) end })
end

-- A child process: runs one measurement, prints its figures and the mtmsg file it used.
if os.getenv("BENCH_CHILD") then
    local key = os.getenv("BENCH_CHILD")
    local f
    local n, nprod = key:match("^fanin,(%d+),(%d+)$")
    if n then
        f = function() return fanin_mtmsg(tonumber(n), tonumber(nprod)) end
    else
        for _, m in ipairs(measures) do
            if m.id .. "." .. m.name == key then f = m.own or m.f end
        end
    end
    if not f then error("BENCH_CHILD: no measurement " .. key, 0) end
    collectgarbage()
    collectgarbage()
    local c0, w0 = cbase.proccpu(), now()
    local v, cpu = f()
    local c1, w1 = cbase.proccpu(), now()
    print(("child %.17g %s %.17g %s"):format(v, cpu and ("%.17g"):format(cpu) or "-",
                                            (c1 - c0) / (w1 - w0), MTMSG_SO))
    os.exit(0)
end

-- ratio = num / den; met when ratio `cmp` target.
local ratios = {
    { id = "S1", what = "mtmsg ns / floor ns", num = "mtmsg", den = "floor", cmp = "<=", target = 1.3 },
    { id = "S2", what = "mtmsg msg/s / C msg/s", num = "mtmsg", den = "C", cmp = ">=", target = 0.35 },
    { id = "S3", what = "mtmsg us / C us", num = "mtmsg", den = "C", cmp = "<=", target = 0.35 },
    { id = "S4", what = "mtmsg msg/s / C msg/s", num = "mtmsg", den = "C", cmp = ">=", target = 0.33 },
    { id = "S5", what = "mtmsg MiB/s / C MiB/s", num = "mtmsg", den = "C", cmp = ">=", target = 1.0 },
    { id = "S6", what = "us at 100000 / us at 100", num = "mtmsg-100000", den = "mtmsg-100", cmp = "<=", target = 3 },
    { id = "S6", what = "Lua table: at 100000 / at 100", num = "luatable-100000", den = "luatable-100" },
}

local function selected(id)
    if not ONLY then return true end
    for w in ONLY:gmatch("[^,%s]+") do if w == id then return true end end
    return false
end

local function median(t)
    local s = {}
    for k, v in ipairs(t) do s[k] = v end
    table.sort(s)
    local n = #s
    if n % 2 == 1 then return s[(n + 1) // 2] end
    return (s[n // 2] + s[n // 2 + 1]) / 2
end

local function minmax(t)
    local lo, hi = math.huge, -math.huge
    for _, v in ipairs(t) do lo = math.min(lo, v); hi = math.max(hi, v) end
    return lo, hi
end

local function fmt(v)
    if v == nil then return "-" end
    local a = math.abs(v)
    if a >= 1e6 then return ("%.3g M"):format(v / 1e6):gsub(" M$", "M") end
    if a >= 100 then return ("%.0f"):format(v) end
    if a >= 10 then return ("%.1f"):format(v) end
    if a >= 1 then return ("%.2f"):format(v) end
    return ("%.3f"):format(v)
end

local function fmtnum(v)
    if v >= 1e6 then return ("%.2fM"):format(v / 1e6) end
    return fmt(v)
end

-- ===== Run =====

io.stdout:setvbuf("line")
local todo = {}
for _, m in ipairs(measures) do
    if selected(m.id) then m.values, m.cores, m.cpus = {}, {}, {}; todo[#todo + 1] = m end
end
local tstart = now()
print(("mtmsg bench: %d runs, scale %g, %s"):format(RUNS, SCALE, mtmsg._INFO))
if ALT then print(("before and after: %s (rows \"-before\") and %s, each in child processes"):format(ALT_SO, SELF_SO)) end
-- How many cores two busy threads get right now: about 2 on an idle 2-CPU machine,
-- less when other jobs run. Taken before and after the runs.
local spin_before = cbase.spincores(2, 0.25)
print(("two busy threads get %.2f cores"):format(spin_before))
for r = 1, RUNS do
    local line = {}
    -- with BENCH_ALT_CPATH, every other run measures the other build first
    local order = {}
    for k, m in ipairs(todo) do order[k] = m end
    for k = 1, #order - 1 do
        if r % 2 == 0 and order[k + 1].before and not order[k].before then
            order[k], order[k + 1] = order[k + 1], order[k]
        end
    end
    for _, m in ipairs(order) do
        collectgarbage()
        collectgarbage()
        -- cores: process CPU time / wall time over the whole measurement (threads
        -- included): 2 threads that never wait show ~2; other load on the machine or
        -- sleeping in the kernel show as less.
        local c0, w0 = cbase.proccpu(), now()
        -- cpu: CPU microseconds per message, where measured; cores: given by
        -- measurements that run in a child process
        local v, cpu, cores = m.f()
        local c1, w1 = cbase.proccpu(), now()
        m.values[r], m.cores[r], m.cpus[r] = v, cores or (c1 - c0) / (w1 - w0), cpu
        line[#line + 1] = ("%s %s %s%s"):format(m.id, m.name, fmtnum(v),
                                                cpu and (" (%.2f cpu-us)"):format(cpu) or "")
    end
    print(("run %d/%d (%.0f s): %s"):format(r, RUNS, now() - tstart, table.concat(line, ", ")))
end

-- Idle waiter: a thread blocked in nextmsg() for 2 s must use no CPU.
local IDLE = 2 * math.min(1, SCALE)
local idle = {}
if not ONLY or selected("idle") then
    local b = mtmsg.newbuffer()
    local ths = {}
    local ready = mtmsg.newbuffer()
    ths[1] = thread.start(idlewaiter, ready:id(), 0, b:id())
    if ready:nextmsg(WAIT) == nil then error("idle waiter did not start") end
    mtmsg.sleep(0.1)                                   -- let it block
    local function stat_ticks()
        local f = io.open("/proc/self/stat")
        if not f then return nil end
        local s = f:read("a"); f:close()
        local fields = {}
        for w in s:match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = w end
        return tonumber(fields[12]) + tonumber(fields[13])   -- utime + stime (fields 14, 15)
    end
    local p0, k0, w0 = cbase.proccpu(), stat_ticks(), now()
    mtmsg.sleep(IDLE)
    local p1, k1, w1 = cbase.proccpu(), stat_ticks(), now()
    b:addmsg("wake")
    local ok, tcpu, msg = ths[1]:join(WAIT)
    if not ok or msg ~= "wake" then error("idle waiter failed: " .. tostring(tcpu)) end
    idle = { wall = w1 - w0, proc = p1 - p0, ticks = k0 and (k1 - k0), thread = tcpu }
    print(("idle: one thread blocked in nextmsg() for %.2f s: process CPU %.0f us "
           .. "(/proc/self/stat: %s ticks), waiter thread CPU %.0f us (incl. wake-up)")
          :format(idle.wall, idle.proc * 1e6, tostring(idle.ticks), idle.thread * 1e6))
end

-- ===== Report =====

local byname = {}
for _, m in ipairs(todo) do byname[m.id .. "." .. m.name] = m end
-- the other build's row of a measurement (BENCH_ALT_CPATH), or nil
local function before(id, name) return ALT and byname[id .. "." .. name .. "-before"] end
-- ns and us per something: lower is better; messages/s and MiB/s: higher is better
local function lower_better(unit) return unit:match("^[nu]s/") ~= nil end

local csv = { "kind,scenario,name,unit,median,min,max,target,verdict,values,cores,cpu_us_per_msg" }
local md = {}
local function add(t, s) t[#t + 1] = s end

local NW = 20                                   -- width of the measurement names
for _, m in ipairs(todo) do NW = math.max(NW, #m.name) end
add(md, "| Scenario | Measurement | Unit | Median | Min | Max | Cores used | CPU µs/msg |")
add(md, "|---|---|---|---:|---:|---:|---:|---:|")
print()
print(("%-4s %-" .. NW .. "s %-14s %12s %12s %12s %6s %10s"):format("", "measurement", "unit", "median", "min",
                                                          "max", "cores", "cpu-us/msg"))
for _, m in ipairs(todo) do
    local med, lo, hi = median(m.values), minmax(m.values)
    m.median = med
    local vals = {}
    for k, v in ipairs(m.values) do vals[k] = ("%.6g"):format(v) end
    local cores = median(m.cores)
    local cpu = #m.cpus == #m.values and median(m.cpus) or nil
    m.cpu = cpu
    add(csv, ("measure,%s,%s,%s,%.6g,%.6g,%.6g,,,%s,%.2f,%s"):format(m.id, m.name, m.unit, med, lo, hi,
        table.concat(vals, ";"), cores, cpu and ("%.4f"):format(cpu) or ""))
    add(md, ("| %s | %s | %s | %s | %s | %s | %.2f | %s |"):format(m.id, m.name, m.unit, fmtnum(med),
        fmtnum(lo), fmtnum(hi), cores, cpu and ("%.2f"):format(cpu) or "–"))
    print(("%-4s %-" .. NW .. "s %-14s %12s %12s %12s %6.2f %10s"):format(m.id, m.name, m.unit, fmtnum(med),
        fmtnum(lo), fmtnum(hi), cores, cpu and ("%.2f"):format(cpu) or "-"))
end

add(md, "")
add(md, "| Scenario | Ratio | Ratio of medians | Per-run min–max | Target | Met |")
add(md, "|---|---|---:|---:|---:|---|")
print()
local RW = ALT and 36 or 26                     -- width of the ratio names
print(("%-4s %-" .. RW .. "s %10s %16s %10s  %s"):format("", "ratio", "of medians", "per-run min-max", "target", "met"))
local plot = { "# id score(target/ratio or ratio/target) score_lo score_hi ratio target cmp"
               .. (ALT and " before_score before_score_lo before_score_hi before_ratio" or "") }
if ALT then add(plot, "# before = " .. ALT_SO) end
local allmet = true

-- median ratio and per-run min, max of a / b (runs paired: same run, interleaved)
local function ratio_of(a, b)
    local per = {}
    for r = 1, RUNS do per[r] = a.values[r] / b.values[r] end
    local lo, hi = minmax(per)
    return a.median / b.median, lo, hi
end

-- One target ratio row; the other build's (is_before) does not count for allmet.
-- Returns the plot columns: score, score_lo, score_hi, ratio.
local function target_row(q, a, b, what, is_before)
    local ratio, lo, hi = ratio_of(a, b)
    if not q.target then                   -- context only, no target
        add(csv, ("ratio,%s,%s,ratio,%.4f,%.4f,%.4f,,,"):format(q.id, what, ratio, lo, hi))
        add(md, ("| %s | %s | %.2f | %.2f–%.2f | – | (context) |"):format(q.id, what, ratio, lo, hi))
        print(("%-4s %-" .. RW .. "s %10.3f %7.3f-%-8.3f %10s  %s"):format(q.id, what, ratio, lo, hi, "-", "(context)"))
        return nil
    end
    local met = (q.cmp == "<=" and ratio <= q.target) or (q.cmp == ">=" and ratio >= q.target)
    if not is_before then allmet = allmet and met end
    local verdict = met and "yes" or "NO"
    add(csv, ("ratio,%s,%s,ratio,%.4f,%.4f,%.4f,%s %g,%s,"):format(q.id, what, ratio, lo, hi,
                                                               q.cmp, q.target, verdict))
    add(md, ("| %s | %s | %.2f | %.2f–%.2f | %s %g | %s |"):format(q.id, what, ratio, lo, hi,
                                                                q.cmp == "<=" and "≤" or "≥", q.target, verdict))
    print(("%-4s %-" .. RW .. "s %10.3f %7.3f-%-8.3f %3s %-6g  %s"):format(q.id, what, ratio, lo, hi,
                                                                q.cmp, q.target, verdict))
    -- score >= 1 means the target is met, whatever its direction
    local function score(x) return q.cmp == "<=" and q.target / x or x / q.target end
    local s_lo, s_hi = score(lo), score(hi)
    if s_lo > s_hi then s_lo, s_hi = s_hi, s_lo end
    return score(ratio), s_lo, s_hi, ratio
end

-- One "after / before" row per mtmsg measurement of the scenario: this build's figure /
-- the other build's, run by run; the verdict says whether that is better, by the unit's
-- direction, and whether the runs agree on it.
local function change_rows(id)
    for _, m in ipairs(todo) do
        local b = m.id == id and not m.before and before(m.id, m.name)
        if b then
            local ratio, lo, hi = ratio_of(m, b)
            local better = lower_better(m.unit) == (ratio < 1)
            local same = math.abs(ratio - 1) < 0.005
            local verdict = ("%s %+.1f%% %s"):format(same and "same" or better and "better" or "worse",
                                                   (ratio - 1) * 100, m.unit:gsub("^us/", "µs/"))
            if lo < 1 and hi > 1 then verdict = verdict .. ", runs disagree" end
            local what = ("%s after / before"):format(m.name)
            add(csv, ("change,%s,%s,ratio,%.4f,%.4f,%.4f,,%s,"):format(id, what, ratio, lo, hi,
                                                                      verdict:gsub(",", ";")))
            add(md, ("| %s | %s | %.3f | %.3f–%.3f | – | %s |"):format(id, what, ratio, lo, hi, verdict))
            print(("%-4s %-" .. RW .. "s %10.3f %7.3f-%-8.3f %10s  %s"):format(id, what, ratio, lo, hi, "-",
                                                                             verdict))
        end
    end
end

local ids, seen = {}, {}
for _, q in ipairs(ratios) do if not seen[q.id] then seen[q.id] = true; ids[#ids + 1] = q.id end end
for _, m in ipairs(todo) do if not seen[m.id] then seen[m.id] = true; ids[#ids + 1] = m.id end end
for _, id in ipairs(ids) do
    for _, q in ipairs(ratios) do
        local a, b = byname[q.id .. "." .. q.num], byname[q.id .. "." .. q.den]
        if q.id == id and a and b then
            local cols = { target_row(q, a, b, q.what) }
            -- the other build against the same baseline (its own where the baseline is mtmsg)
            local ab, bb = before(q.id, q.num), before(q.id, q.den) or b
            if ab then
                local bcols = { target_row(q, ab, bb, q.what .. " (before)", true) }
                if cols[1] then for k = 1, 4 do cols[#cols + 1] = bcols[k] end end
            end
            if cols[1] then
                add(plot, ('%s %.4f %.4f %.4f %.4f %g "%s"'):format(q.id, cols[1], cols[2], cols[3], cols[4],
                                                                  q.target, q.cmp == "<=" and "<=" or ">=")
                          .. (cols[5] and (" %.4f %.4f %.4f %.4f"):format(cols[5], cols[6], cols[7], cols[8]) or ""))
            end
        end
    end
    change_rows(id)
end
-- The producer sweep: one row per P.
if byname["SW.mtmsg-P" .. (SWEEP[1] or 0)] then
    local function cell(m)
        if not m then return "–", "–" end
        return fmtnum(m.median), m.cpu and ("%.2f"):format(m.cpu) or "–"
    end
    add(md, "")
    add(md, ("Producer sweep (SW): P producers, one listener buffer each → one listener, %d "
             .. "messages in all; medians of %d runs; CPU µs/msg is process CPU time / messages "
             .. "(all threads). \"spin off\": the same with MTMSG_NOSPIN=1 (a child process)."):format(NSW, RUNS)
             .. (ALT and (" \"before\": the same with %s (a child process)."):format(ALT_SO) or ""))
    add(md, "")
    local althead = ALT and " before msg/s | CPU µs/msg | after / before msg/s |" or ""
    add(md, "| P | mtmsg msg/s | CPU µs/msg | spin off msg/s | CPU µs/msg | C msg/s | CPU µs/msg | mtmsg / C | CPU spin / spin off |" .. althead)
    add(md, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|" .. (ALT and "---:|---:|---:|" or ""))
    print()
    print(("%-3s %10s %8s %10s %8s %10s %8s %8s %8s"):format("P", "mtmsg", "cpu-us", "spin-off", "cpu-us",
                                                         "C", "cpu-us", "mt/C", "cpu s/o"))
    for _, p in ipairs(SWEEP) do
        local m, o, c = byname["SW.mtmsg-P" .. p], byname["SW.nospin-P" .. p], byname["SW.C-P" .. p]
        local mv, mc = cell(m)
        local ov, oc = cell(o)
        local cv, cc = cell(c)
        local rc = (m and c) and ("%.2f"):format(m.median / c.median) or "–"
        local rs = (m and o and m.cpu and o.cpu) and ("%.2f"):format(m.cpu / o.cpu) or "–"
        local bm = before("SW", "mtmsg-P" .. p)
        local bv, bc = cell(bm)
        local ba = (m and bm) and ("%.3f"):format(m.median / bm.median) or "–"
        local altcells = ALT and (" %s | %s | %s |"):format(bv, bc, ba) or ""
        add(md, ("| %d | %s | %s | %s | %s | %s | %s | %s | %s |%s"):format(p, mv, mc, ov, oc, cv, cc, rc, rs, altcells))
        print(("%-3d %10s %8s %10s %8s %10s %8s %8s %8s%s"):format(p, mv, mc, ov, oc, cv, cc, rc, rs,
              ALT and ("  before %s %s, after/before %s"):format(bv, bc, ba) or ""))
    end
end
if idle.proc then
    add(csv, ("idle,idle,process CPU while one thread waits %.2f s,s,%.6f,,,0,%s,"):format(
        idle.wall, idle.proc, idle.proc < 0.01 and "yes" or "NO"))
    add(csv, ("idle,idle,waiter thread CPU,s,%.6f,,,0,%s,"):format(idle.thread,
        idle.thread < 0.01 and "yes" or "NO"))
    add(md, "")
    add(md, ("Idle waiter: a thread blocked in `nextmsg()` for %.2f s while the main thread sleeps: "
             .. "process CPU %.0f µs (/proc/self/stat utime+stime: %s ticks of 10 ms), waiter "
             .. "thread CPU %.0f µs including its wake-up."):format(idle.wall, idle.proc * 1e6,
                                                             tostring(idle.ticks), idle.thread * 1e6))
end

local function loadavg()
    local f = io.open("/proc/loadavg")
    if not f then return "?" end
    local s = f:read("l"); f:close()
    return (s:match("^(%S+ %S+ %S+)"))
end
local spin_after = cbase.spincores(2, 0.25)
add(md, "")
add(md, ("Two busy threads got %.2f cores before the runs and %.2f after; load average at "
         .. "the end: %s (1, 5, 15 min; %d CPUs)."):format(spin_before, spin_after, loadavg(),
                                                         thread.ncpu()))
add(csv, ("env,cores,two busy threads before/after,cores,%.2f,%.2f,%.2f,,,"):format(
    (spin_before + spin_after) / 2, math.min(spin_before, spin_after), math.max(spin_before, spin_after)))

local function write(path, lines)
    local f = assert(io.open(path, "w"))
    f:write(table.concat(lines, "\n"), "\n")
    f:close()
end
write(OUT .. "/results.csv", csv)
write(OUT .. "/results.md", md)
write(OUT .. "/plot.dat", plot)
print(("\n%s; total %.0f s; wrote %s/results.csv, results.md, plot.dat"):format(
    allmet and "all targets met" or "some targets NOT met", now() - tstart, OUT))
