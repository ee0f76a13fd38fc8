-- Wake-up handles (buffer:getfd, listener:getfd) and the event loops they are made for.
--
-- The core part needs no package: tests/mod/fdprobe.c polls the descriptor with poll(2)
-- and counts /proc/self/fd. Then one block per event loop, each defined only where the
-- loop's package loads for this Lua version:
--   luv (lua-luv) and cqueues (lua-cqueues), LuaSocket (lua-socket): Debian builds all
--   five versions (LuaJIT uses the 5.1 builds);
--   copas (lua-copas): Debian ships it for 5.1, 5.2 (and so LuaJIT) only;
--   lua-posix: Debian builds 5.1, 5.2, 5.3 (and so LuaJIT), not 5.4.
-- On a version where Debian has no build of a package, its block defines no tests at all
-- (nothing is counted as passed for it). Where Debian has one but it does not load on a
-- Debian system, a single failing test says so (scripts/deps.sh installs them), except
-- where MTMSG_NO_LOOP_PKGS=1 says that this interpreter cannot load the system's builds
-- (the i386 port check runs an i386 Lua on an amd64 system: see scripts/ports.sh).
-- On Windows, where getfd is not supported, only that error is tested.
--
-- Thread bodies are dumped into a fresh state (see threads_spec.lua): they use only their
-- arguments and require "mtmsg" themselves. Timeouts only detect a hang.
local mtmsg = require "mtmsg"
local H = require "helpers"
local thread = require "testthread"
local checkerr, checkargerr = H.checkerr, H.checkargerr
local T = H.TIMEOUT

local VERSION = type(jit) == "table" and "luajit" or _VERSION:match("%d+%.%d+")
local WINDOWS = package.config:sub(1, 1) == "\\"
local DEBIAN = io.open("/etc/debian_version") ~= nil
local N = tonumber(os.getenv("MTMSG_EVENTLOOP_N")) or 2000   -- messages per test

-- ===== thread bodies =====

local function producer(id, tag, n)
    local mtmsg = require "mtmsg"
    local b = mtmsg.buffer(id)
    for i = 1, n do b:addmsg(tag, i) end
    return n
end

local function closer(id, kind)
    local mtmsg = require "mtmsg"
    local o = kind == "listener" and mtmsg.listener(id) or mtmsg.buffer(id)
    mtmsg.sleep(0.01)          -- not needed for correctness: lets the loop block first
    o:close()
    return true
end

local function aborter(id, kind)
    local mtmsg = require "mtmsg"
    local o = kind == "listener" and mtmsg.listener(id) or mtmsg.buffer(id)
    mtmsg.sleep(0.01)
    o:abort(true)
    return true
end

-- Checks what a consumer received: msgs[k] = {tag, i}; every tag 1..ntags sends 1..n, in
-- order per tag, each exactly once.
local function checkorder(msgs, ntags, n)
    local nexti = {}
    for t = 1, ntags do nexti[t] = 1 end
    for k, m in ipairs(msgs) do
        local t, i = m[1], m[2]
        assert(nexti[t] == i, ("message %d: tag %s number %s, expected %s"):format(
            k, tostring(t), tostring(i), tostring(nexti[t])))
        nexti[t] = i + 1
    end
    for t = 1, ntags do assert(nexti[t] == n + 1, "tag " .. t .. " incomplete") end
    assert(#msgs == ntags * n)
end

-- Takes everything there is (nextmsg(0)) into msgs; returns how many.
local function drain(o, msgs)
    local k = 0
    while true do
        local t, i = o:nextmsg(0)
        if t == nil then return k end
        msgs[#msgs + 1] = {t, i}
        k = k + 1
    end
end

if WINDOWS then
    describe("wake-up handles on Windows", function()
        it("are not supported: a clear error", function()
            local b = mtmsg.newbuffer()
            local ok, err = pcall(b.getfd, b)
            assert(not ok and err == mtmsg.error.wakeup_unavailable .. ": not supported on this platform",
                   tostring(err))
            b:addmsg(1)                                 -- the buffer still works
            assert(b:nextmsg(0) == 1)
        end)
    end)
    return
end

local fdprobe = require "fdprobe"
local readable = fdprobe.readable

describe("wake-up handles", function()
    after_each(function() mtmsg.abort(false) end)

    it("getfd gives one non-blocking, close-on-exec descriptor per object", function()
        local b = mtmsg.newbuffer("efd")
        local fd = b:getfd()
        assert(math.floor(fd) == fd and fd >= 0)
        assert(b:getfd() == fd and b:pollfd() == fd)
        assert(mtmsg.buffer("efd"):getfd() == fd)         -- the object's, not the handle's
        local nonblock, cloexec = fdprobe.flags(fd)
        assert(nonblock == true and cloexec == true)
        local l = mtmsg.newlistener()
        local lfd = l:getfd()
        assert(lfd ~= fd and l:pollfd() == lfd and mtmsg.listener(l:id()):getfd() == lfd)
        assert(select(2, fdprobe.flags(lfd)) == true)
    end)

    it("cqueues protocol: events() is 'r', timeout() is nil", function()
        for _, o in ipairs({mtmsg.newbuffer(), mtmsg.newlistener()}) do
            assert(o:events() == "r")
            assert(select("#", o:timeout()) == 1 and o:timeout() == nil)
        end
    end)

    it("a buffer's descriptor is readable exactly while it has messages", function()
        local b = mtmsg.newbuffer()
        b:addmsg("before")                          -- added before the handle existed
        local fd = b:getfd()
        assert(readable(fd) == true)
        assert(b:nextmsg(0) == "before")
        assert(readable(fd) == false)
        b:addmsg(1); b:addmsg(2)
        assert(readable(fd) == true)
        assert(b:nextmsg(0) == 1)
        assert(readable(fd) == true)                -- one left
        assert(b:nextmsg(0) == 2)
        assert(readable(fd) == false)
        b:setmsg(3)
        assert(readable(fd) == true)
        b:clear()
        assert(readable(fd) == false)
        local w = mtmsg.newwriter()
        w:add(4); w:addmsg(b)
        assert(readable(fd) == true)
        local r = mtmsg.newreader()
        assert(r:nextmsg(b, 0) == true and r:next() == 4)
        assert(readable(fd) == false)
    end)

    it("is readable after close and abort, so that the loop sees the error", function()
        local b = mtmsg.newbuffer()
        local fd = b:getfd()
        b:abort(true)
        assert(readable(fd) == true)
        checkerr("operation_aborted", b.nextmsg, b, 0)
        b:abort(false)
        assert(readable(fd) == false)
        mtmsg.abort(true)
        assert(readable(fd) == true)
        mtmsg.abort(false)
        assert(readable(fd) == false)
        b:close()
        assert(readable(fd) == true)
        checkerr("object_closed", b.nextmsg, b, 0)
        assert(b:getfd() == fd)                     -- an existing handle stays available
        assert(readable(fd) == true)
    end)

    it("is readable at the end of a finished stream, so that the loop sees mtmsg.EOS", function()
        local b = mtmsg.newbuffer()
        local fd = b:getfd()
        b:addmsg(1)
        b:finish()
        assert(readable(fd) == true)
        assert(b:nextmsg(0) == 1)
        assert(readable(fd) == true)                -- drained: the end of stream is there
        assert(b:nextmsg(0) == mtmsg.EOS)
        local l = mtmsg.newlistener()
        local lb1, lb2 = l:newbuffer(), l:newbuffer()
        local lfd = l:getfd()
        lb1:finish()
        assert(readable(lfd) == false)              -- lb2 is still open
        lb2:addmsg("x")
        lb2:finish()
        assert(readable(lfd) == true)
        assert(l:nextmsg(0) == "x")
        assert(readable(lfd) == true)               -- all finished and drained
        assert(l:nextmsg(0) == mtmsg.EOS)
        lb2 = nil
        collectgarbage(); collectgarbage()
        assert(readable(lfd) == true)               -- lb1 alone, finished
    end)

    it("a new handle for a closed object is a clear error", function()
        local b = mtmsg.newbuffer()
        b:close()
        checkerr("object_closed", b.getfd, b)
        checkerr("object_closed", b.pollfd, b)
        local l = mtmsg.newlistener()
        l:close()
        checkerr("object_closed", l.getfd, l)
    end)

    it("rejects a wrong self", function()
        local b, l = mtmsg.newbuffer(), mtmsg.newlistener()
        for _, m in ipairs({"getfd", "pollfd", "events", "timeout"}) do
            checkargerr(nil, b[m])
            checkargerr(nil, b[m], l)
            checkargerr(nil, b[m], 3)
            checkargerr(nil, l[m], b)
            checkargerr(nil, l[m], {})
        end
    end)

    it("a listener's descriptor is readable while any of its buffers has a message", function()
        local l = mtmsg.newlistener()
        local b1, b2 = l:newbuffer(), l:newbuffer()
        local fd = l:getfd()
        assert(readable(fd) == false)
        b1:addmsg(1)
        assert(readable(fd) == true)
        b2:addmsg(2)
        assert(l:nextmsg(0) == 1)
        assert(readable(fd) == true)
        assert(b2:nextmsg(0) == 2)                  -- taken through the buffer
        assert(readable(fd) == false)
        local b3 = l:newbuffer()
        b3:addmsg(3)
        assert(readable(fd) == true)
        l:clear()
        assert(readable(fd) == false)
        b1:addmsg(4)
        b1 = nil; H.gc()                            -- an orphan with a message
        assert(readable(fd) == true)
        assert(l:nextmsg(0) == 4)
        assert(readable(fd) == false)
        l:abort(true)
        assert(readable(fd) == true)
        l:abort(false)
        assert(readable(fd) == false)
        l:close()
        assert(readable(fd) == true)
        assert(l:getfd() == fd)
    end)

    it("buffer and listener handles of one buffer follow their own objects", function()
        local l = mtmsg.newlistener()
        local b = l:newbuffer()
        local bfd, lfd = b:getfd(), l:getfd()
        b:addmsg(1)
        assert(readable(bfd) and readable(lfd))
        assert(l:nextmsg(0) == 1)
        assert(not readable(bfd) and not readable(lfd))
        l:close()                                   -- closes b too
        assert(readable(bfd) and readable(lfd))
    end)

    it("works alongside nonblock handles, notifiers and blocking readers", function()
        local b, n = mtmsg.newbuffer(), mtmsg.newbuffer()
        b:notifier(n)
        local nb = mtmsg.buffer(b:id())
        nb:nonblock(true)
        local fd, nfd = b:getfd(), n:getfd()
        nb:addmsg(1)
        assert(readable(fd) and readable(nfd))      -- the notifier added to n
        assert(nb:nextmsg() == 1)
        assert(not readable(fd) and readable(nfd))
        assert(select("#", n:nextmsg(0)) == 0 and not readable(nfd))
        local t = thread.start(producer, b:id(), 1, 1)
        local tag, i = b:nextmsg(T)                 -- a blocking take
        assert(tag == 1 and i == 1 and t:join())
        assert(not readable(fd))
    end)

    it("the descriptor is closed when the object is freed (no leak over 100 k objects)",
    function()
        local count = tonumber(os.getenv("MTMSG_EVENTLOOP_OBJECTS")) or 100000
        H.gc()
        local before = fdprobe.nfds()
        if not before then return end               -- no /proc: nothing to count
        for i = 1, count do
            local b = mtmsg.newbuffer()
            b:getfd()
            if i % 2 == 0 then b:addmsg(i) end      -- some with the level on
            if i % 500 == 0 then collectgarbage() end
        end
        for i = 1, count / 10 do
            local l = mtmsg.newlistener()
            local b = l:newbuffer()
            l:getfd(); b:getfd()
            b:addmsg(i)
            b = nil                                 -- an orphan: freed with the listener
            if i % 200 == 0 then collectgarbage() end
        end
        H.gc()
        assert(fdprobe.nfds() == before, "descriptors before: " .. before .. ", after: "
                                          .. fdprobe.nfds())
    end)

    it("from C: the descriptor lives while native code holds the buffer", function()
        local probe = require "capiprobe"
        H.gc()
        local before = fdprobe.nfds()
        local b = mtmsg.newbuffer()
        local id, fd = b:id(), b:getfd()
        local ref = probe.ref(b)                    -- retainReceiver, as a C consumer would
        b = nil; H.gc()                             -- no Lua handle left
        assert(readable(fd) == false)
        assert(ref:send { { "int", 7 } } == 0)      -- a native producer adds: readable
        assert(readable(fd) == true)
        assert(mtmsg.buffer(id):nextmsg(0) == 7)
        assert(readable(fd) == false)
        ref:release(); H.gc()                       -- the last reference: fd closed
        if before then assert(fdprobe.nfds() == before) end
    end)

    -- The loop between "readable" and "take": producers add while the consumer takes one
    -- message per wake-up. Readable must mean "a message is there" (single consumer), and
    -- a wait must never miss a message (no lost wake-up).
    local function race(o, sinks, ntags)
        local fd, msgs, ts = o:getfd(), {}, {}
        for t = 1, ntags do ts[t] = thread.start(producer, sinks[t]:id(), t, N) end
        while #msgs < ntags * N do
            assert(readable(fd, T), "no wake-up with " .. (ntags * N - #msgs) .. " to come")
            local t, i = o:nextmsg(0)
            assert(t ~= nil, "readable, but nothing to take")
            msgs[#msgs + 1] = {t, i}
        end
        for t = 1, ntags do assert(ts[t]:join(T)) end
        assert(readable(fd) == false)
        checkorder(msgs, ntags, N)
    end

    it("race: four producers, one buffer, one take per wake-up", function()
        local b = mtmsg.newbuffer()
        race(b, {b, b, b, b}, 4)
    end)

    it("race: four producers on four buffers of a listener", function()
        local l = mtmsg.newlistener()
        race(l, {l:newbuffer(), l:newbuffer(), l:newbuffer(), l:newbuffer()}, 4)
    end)

    it("race: taking everything per wake-up, with clear and setmsg in between", function()
        local b = mtmsg.newbuffer()
        local fd = b:getfd()
        local ts = {}
        for t = 1, 4 do ts[t] = thread.start(producer, b:id(), t, N) end
        local got, idle = 0, 0
        while got < 4 * N do
            assert(readable(fd, T), "no wake-up")
            local k = drain(b, {})
            got = got + k
            if k == 0 then idle = idle + 1 end      -- raced with nobody: must not happen
        end
        for t = 1, 4 do assert(ts[t]:join(T)) end
        assert(idle == 0 and readable(fd) == false)
        b:setmsg(1); b:setmsg(2)
        assert(readable(fd)); b:clear(); assert(not readable(fd))
    end)
end)

-- ===== the event loops =====

local DEBIAN_BUILDS = {
    luv = {["5.1"] = 1, ["5.2"] = 1, ["5.3"] = 1, ["5.4"] = 1, luajit = 1},
    cqueues = {["5.1"] = 1, ["5.2"] = 1, ["5.3"] = 1, ["5.4"] = 1, luajit = 1},
    socket = {["5.1"] = 1, ["5.2"] = 1, ["5.3"] = 1, ["5.4"] = 1, luajit = 1},
    copas = {["5.1"] = 1, ["5.2"] = 1, luajit = 1},
    ["posix.poll"] = {["5.1"] = 1, ["5.2"] = 1, ["5.3"] = 1, luajit = 1},
}

local function withpkg(name, body)
    local ok, mod = pcall(require, name)
    if ok then
        describe("event loop " .. name, function()
            after_each(function() mtmsg.abort(false) end)
            body(mod)
        end)
    elseif DEBIAN and DEBIAN_BUILDS[name][VERSION] and os.getenv("MTMSG_NO_LOOP_PKGS") ~= "1" then
        it("package " .. name .. " loads (scripts/deps.sh installs it)", function()
            error("require '" .. name .. "' failed: " .. tostring(mod))
        end)
    end
end

withpkg("luv", function(uv)
    -- Handles closed but not yet through the loop would be finished at lua_close, after
    -- their Lua side is gone (a crash in luv): each test ends with a loop run. A test that
    -- failed may have left handles active, which would keep uv.run() from returning:
    -- close them all first.
    after_each(function()
        uv.walk(function(h) if not h:is_closing() then h:close() end end)
        uv.run()
    end)

    -- Runs the loop until done() or until progress() (a count) has not moved for T
    -- seconds (so a slow machine, valgrind or TSan is no failure, a stuck loop is);
    -- returns whether done.
    local function run(done, progress)
        local hang = uv.new_timer()
        local hung, seen = false, progress()
        -- libuv's loop time is cached from its last iteration, which may be long ago (the
        -- specs before this one): without an update the timer is due at once.
        uv.update_time()
        hang:start(T * 1000, T * 1000, function()
            local now = progress()
            if now == seen then hung = true; uv.stop() end
            seen = now
        end)
        while not done() and not hung do uv.run("once") end
        hang:close()
        uv.run("nowait")                            -- let the close callbacks run
        return not hung
    end

    local function feed(o, sinks)
        local p, msgs, ts = uv.new_poll(o:getfd()), {}, {}
        p:start("r", function(err)
            assert(not err, err)
            drain(o, msgs)
        end)
        for t = 1, #sinks do ts[t] = thread.start(producer, sinks[t]:id(), t, N) end
        assert(run(function() return #msgs == #sinks * N end, function() return #msgs end),
               "luv loop hung: no message for " .. T .. " s")
        p:stop(); p:close()
        for t = 1, #sinks do assert(ts[t]:join(T)) end
        checkorder(msgs, #sinks, N)
    end

    it("uv.new_poll(buffer:getfd()) wakes the loop; messages once, in order", function()
        local b = mtmsg.newbuffer()
        feed(b, {b})
    end)

    it("a listener fed by two threads", function()
        local l = mtmsg.newlistener()
        feed(l, {l:newbuffer(), l:newbuffer()})
    end)

    it("wakes on close", function()
        local b = mtmsg.newbuffer()
        local p, err = uv.new_poll(b:getfd()), nil
        p:start("r", function()
            local ok, e = pcall(b.nextmsg, b, 0)
            if not ok then err = e; p:stop() end
        end)
        local t = thread.start(closer, b:id(), "buffer")
        assert(run(function() return err ~= nil end, function() return 0 end), "not woken by close")
        p:close()
        assert(t:join(T))
        assert(err:find("^mtmsg%.error%.object_closed"), err)
    end)
end)

withpkg("cqueues", function(cqueues)
    it("cqueues.poll(buffer) blocks a coroutine; messages once, in order", function()
        local b = mtmsg.newbuffer()
        local cq, msgs = cqueues.new(), {}
        cq:wrap(function()
            while #msgs < 2 * N do
                assert(cqueues.poll(b, T) == b, "cqueues.poll timed out")
                drain(b, msgs)
            end
        end)
        local t1 = thread.start(producer, b:id(), 1, N)
        local t2 = thread.start(producer, b:id(), 2, N)
        assert(cq:loop())
        assert(t1:join(T) and t2:join(T))
        checkorder(msgs, 2, N)
    end)

    it("cqueues.poll(listener), and a wake-up by abort", function()
        local l = mtmsg.newlistener()
        local b = l:newbuffer()
        local cq, msgs, err = cqueues.new(), {}, nil
        cq:wrap(function()
            while #msgs < N do
                assert(cqueues.poll(l, T) == l, "cqueues.poll timed out")
                drain(l, msgs)
            end
        end)
        local t = thread.start(producer, b:id(), 1, N)
        assert(cq:loop())
        assert(t:join(T))
        checkorder(msgs, 1, N)
        cq:wrap(function()
            assert(cqueues.poll(l, T) == l, "not woken by abort")
            err = select(2, pcall(l.nextmsg, l, 0))
        end)
        local a = thread.start(aborter, l:id(), "listener")
        assert(cq:loop())
        assert(a:join(T))
        assert(err and err:find("^mtmsg%.error%.operation_aborted"), tostring(err))
    end)
end)

withpkg("socket", function(socket)
    it("socket.select({buffer}) with getfd; messages once, in order", function()
        local b = mtmsg.newbuffer()
        local msgs = {}
        local t = thread.start(producer, b:id(), 1, N)
        while #msgs < N do
            local r = socket.select({b}, nil, T)
            assert(r[1] == b and r[b], "select timed out")
            drain(b, msgs)
        end
        assert(t:join(T))
        checkorder(msgs, 1, N)
        assert(#socket.select({b}, nil, 0) == 0)
    end)

    it("socket.select wakes on close, together with a socket", function()
        local b = mtmsg.newbuffer()
        local srv = assert(socket.bind("127.0.0.1", 0))
        local t = thread.start(closer, b:id(), "buffer")
        local r = socket.select({srv, b}, nil, T)
        assert(r[b], "not woken by close")
        assert(not r[srv])
        checkerr("object_closed", b.nextmsg, b, 0)
        srv:close()
        assert(t:join(T))
    end)
end)

withpkg("copas", function(copas)
    -- copas.receive wants a socket-like object: getfd for its select, receive that says
    -- "timeout" when nothing is there (and returns other errors, as sockets do: Lua 5.1
    -- cannot yield across a pcall), close for copas.autoclose.
    local function adapter(o)
        return {
            getfd = function() return o:getfd() end,
            receive = function()
                local ok, t, i = pcall(o.nextmsg, o, 0)
                if not ok then return nil, t end
                if t == nil then return nil, "timeout" end
                return {t, i}
            end,
            close = function() end,
        }
    end

    it("a copas thread waits with copas.receive; messages once, in order", function()
        local l = mtmsg.newlistener()
        local b1, b2 = l:newbuffer(), l:newbuffer()
        local a, msgs = adapter(l), {}
        copas.addthread(function()
            while #msgs < 2 * N do msgs[#msgs + 1] = copas.receive(a) end
        end)
        local t1 = thread.start(producer, b1:id(), 1, N)
        local t2 = thread.start(producer, b2:id(), 2, N)
        while #msgs < 2 * N do assert(copas.step(T), "copas.step timed out") end
        assert(t1:join(T) and t2:join(T))
        checkorder(msgs, 2, N)
    end)

    it("wakes on close", function()
        local b = mtmsg.newbuffer()
        local a, err = adapter(b), nil
        copas.addthread(function()
            err = select(2, copas.receive(a))
        end)
        local t = thread.start(closer, b:id(), "buffer")
        while err == nil do assert(copas.step(T), "not woken by close") end
        assert(t:join(T))
        assert(err:find("object_closed", 1, true), err)
    end)
end)

withpkg("posix.poll", function(poll)
    it("poll(2) via lua-posix; messages once, in order", function()
        local b = mtmsg.newbuffer()
        local fd, msgs = b:getfd(), {}
        local t = thread.start(producer, b:id(), 1, N)
        while #msgs < N do
            local fds = {[fd] = {events = {IN = true}}}
            assert(poll.poll(fds, T * 1000) == 1 and fds[fd].revents.IN, "poll timed out")
            drain(b, msgs)
        end
        assert(t:join(T))
        checkorder(msgs, 1, N)
        assert(poll.poll({[fd] = {events = {IN = true}}}, 0) == 0)
    end)

    it("poll(2) wakes on close of a listener", function()
        local l = mtmsg.newlistener()
        local fd = l:getfd()
        local t = thread.start(closer, l:id(), "listener")
        local fds = {[fd] = {events = {IN = true}}}
        assert(poll.poll(fds, T * 1000) == 1, "not woken by close")
        checkerr("object_closed", l.nextmsg, l, 0)
        assert(t:join(T))
    end)
end)
