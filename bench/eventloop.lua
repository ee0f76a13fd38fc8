-- Event-loop scenario (make bench-eventloop): a luv loop woken by messages from worker
-- threads, three designs compared:
--   fd       uv.new_poll(buffer:getfd()): the loop sleeps until the buffer has messages
--   timer    a 1 ms uv timer that drains the buffer with nextmsg(0)
--   sockpair the worker writes one byte to a socketpair per message; the loop polls
--            the socket, reads the bytes and takes the messages
-- Measures: one-way latency addmsg (worker) -> callback (loop), median and p99 of
-- LAT_N round trips; throughput of the loop draining TP_N messages from 1 and 4
-- producer threads; CPU time of a loop idle for IDLE_S seconds on 100 buffers.
-- Lua 5.3 (luv and lua-posix, whose socketpair/write the sockpair design needs, both
-- exist there on Debian). Prints a markdown table.
local uv = require "luv"
local mtmsg = require "mtmsg"
local thread = require "testthread"
local socket = require "posix.sys.socket"
local unistd = require "posix.unistd"

local SCALE = tonumber(os.getenv("BENCH_SCALE")) or 1
local LAT_N = math.floor(2000 * SCALE)
local TP_N = math.floor(200000 * SCALE)
local IDLE_S = 2 * SCALE

-- ===== worker bodies (fresh states) =====

-- Latency: waits for "go" on ctl, then adds the send time to out (and writes a byte to
-- wfd for sockpair), n times.
local function lat_worker(ctl, out, n, wfd)
    local mtmsg = require "mtmsg"
    local unistd = wfd and require "posix.unistd"
    local c, b = mtmsg.buffer(ctl), mtmsg.buffer(out)
    for _ = 1, n do
        c:nextmsg()
        b:addmsg(mtmsg.time())
        if wfd then unistd.write(wfd, "x") end
    end
    return true
end

-- Throughput: adds n messages (and a byte per message for sockpair).
local function tp_worker(out, n, wfd)
    local mtmsg = require "mtmsg"
    local unistd = wfd and require "posix.unistd"
    local b = mtmsg.buffer(out)
    for i = 1, n do
        b:addmsg(i)
        if wfd then unistd.write(wfd, "x") end
    end
    return true
end

-- The loop side of each design: calls onwake() when messages may be there; returns a
-- cleanup function.
local function watch(design, b, onwake)
    if design == "fd" then
        local p = uv.new_poll(b:getfd())
        p:start("r", onwake)
        return function() p:stop(); p:close() end
    elseif design == "timer" then
        local t = uv.new_timer()
        t:start(1, 1, onwake)
        return function() t:stop(); t:close() end
    else
        local r, w = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM, 0)
        local p = uv.new_poll(r)
        p:start("r", function()
            unistd.read(r, 65536)           -- the bytes only say "look"
            onwake()
        end)
        return function() p:stop(); p:close(); unistd.close(r) end, w
    end
end

local function percentile(t, q)
    table.sort(t)
    return t[math.max(1, math.ceil(#t * q))]
end

local function latency(design)
    local ctl, b = mtmsg.newbuffer(), mtmsg.newbuffer()
    local lats, got = {}, 0
    local stop, wfd
    stop, wfd = watch(design, b, function()
        for t0 in function() return b:nextmsg(0) end do
            lats[#lats + 1] = mtmsg.time() - t0
            got = got + 1
            if got < LAT_N then ctl:addmsg(true) end
        end
        if got == LAT_N then stop() end
    end)
    local w = thread.start(lat_worker, ctl:id(), b:id(), LAT_N, wfd)
    ctl:addmsg(true)
    uv.run()
    assert(w:join())
    if wfd then unistd.close(wfd) end
    return percentile(lats, 0.5) * 1e6, percentile(lats, 0.99) * 1e6
end

local function throughput(design, nthreads)
    local b = mtmsg.newbuffer()
    local got, per = 0, TP_N // nthreads
    local stop, wfd
    stop, wfd = watch(design, b, function()
        while b:nextmsg(0) do got = got + 1 end
        if got == per * nthreads then stop() end
    end)
    local t0, c0 = mtmsg.time(), os.clock()
    local ws = {}
    for i = 1, nthreads do ws[i] = thread.start(tp_worker, b:id(), per, wfd) end
    uv.run()
    local dt, cpu = mtmsg.time() - t0, os.clock() - c0
    for i = 1, nthreads do assert(ws[i]:join()) end
    if wfd then unistd.close(wfd) end
    return got / dt, cpu
end

-- CPU seconds (this process) of a loop waiting IDLE_S seconds on 100 empty buffers.
local function idle(design)
    local stops, bufs = {}, {}
    for i = 1, 100 do
        bufs[i] = mtmsg.newbuffer()
        if design == "fd" then
            stops[i] = watch("fd", bufs[i], function() bufs[i]:nextmsg(0) end)
        end
    end
    if design == "timer" then          -- one 1 ms timer polling all 100
        stops[1] = watch("timer", bufs[1], function()
            for i = 1, 100 do bufs[i]:nextmsg(0) end
        end)
    end
    local t = uv.new_timer()
    t:start(math.floor(IDLE_S * 1000), 0, function()
        t:close()
        for _, s in ipairs(stops) do s() end
    end)
    local c0 = os.clock()
    uv.run()
    return os.clock() - c0
end

print(("luv %s, %s; latency: %d round trips, throughput: %d messages, idle: %g s")
      :format(uv.version_string(), _VERSION, LAT_N, TP_N, IDLE_S))
print("")
print("| design | latency median (µs) | latency p99 (µs) | 1 producer (msg/s) | 4 producers (msg/s) | idle CPU, 100 buffers (% of one core) |")
print("|---|---:|---:|---:|---:|---:|")
for _, d in ipairs({"fd", "timer", "sockpair"}) do
    local med, p99 = latency(d)
    local tp1 = throughput(d, 1)
    local tp4 = throughput(d, 4)
    local cpu = d == "sockpair" and nil or idle(d)
    print(("| %s | %.1f | %.1f | %.0f | %.0f | %s |"):format(d, med, p99, tp1, tp4,
          cpu and ("%.2f"):format(cpu / IDLE_S * 100) or "(as fd)"))
end
