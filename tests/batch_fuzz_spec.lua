-- A randomized stress of the takers' batch (docs/DESIGN.md, "The takers' batch"):
-- producers add (p, i) with addmsg or waitaddmsg; takers take with randomly chosen calls
-- (nextmsg blocking, with and without a timeout, nonblocking with and without one,
-- reader:nextmsg, the messages() iterator) and peek; a chaos thread switches the batch
-- off and on (setlimit, a "<" notifier, sometimes getfd) and reads the counts.
-- Checked at the end: every message taken exactly once; within each taker, each
-- producer's messages in order; a peek never shows a message older than one taken
-- before it, nor newer than one taken after it. Nothing depends on timing: a timeout
-- (30 s and more) only detects a hang.
--
-- BATCH_FUZZ_N: messages per producer (default 20000); BATCH_FUZZ_ROUNDS (default 6);
-- BATCH_FUZZ_SEED: the first round's seed (default: from the clock, printed on failure);
-- BATCH_DEBUG=1 prints what each round did.
--
-- Thread bodies are dumped into fresh states: they use only their arguments.
local mtmsg = require "mtmsg"
local H = require "helpers"

local HANG = 120        -- seconds: a thread still running then is hung

-- Park-Miller in doubles: the same sequence on every Lua version.
local function rng(seed)
    local x = seed % 2147483646 + 1
    return function(n)
        x = x * 16807 % 2147483647
        return x % n + 1
    end
end

-- ===== thread bodies =====

local function producer(id, p, n, seed)
    local mtmsg = require "mtmsg"
    local x = seed % 2147483646 + 1
    local function rnd(k) x = x * 16807 % 2147483647; return x % k + 1 end
    local b = mtmsg.buffer(id)
    local nb = mtmsg.buffer(id)
    nb:nonblock(true)
    local waits, refused = 0, 0
    local burst = ({16, 64, 256, 1e9})[rnd(4)]
    for i = 1, n do
        local m = rnd(8)
        local ok
        if m == 1 then
            ok = b:waitaddmsg(30, p, i)
            waits = waits + 1
        else
            ok = (m == 2 and nb or b):addmsg(p, i)
            -- false: a count limit, senders waiting (they go first) or busy (nonblock)
            if not ok then
                refused = refused + 1
                ok = b:waitaddmsg(30, p, i)
            end
        end
        if not ok then return "waitaddmsg found no room in 30 s (message " .. i .. ")" end
        -- bursts: the takers empty the buffer between them, so that they often race
        -- for the last messages of a batch (pacing, no synchronisation)
        if rnd(burst) == 1 then mtmsg.sleep(0.001) end
    end
    return "ok", waits, refused
end

-- Returns "ok" and the number of calls of each kind, or what went wrong. The messages
-- it took go to `done` as (tid, p, "i1,i2,...") once it got "stop".
local function taker(id, doneid, tid, np, seed, hang)
    local mtmsg = require "mtmsg"
    local x = seed % 2147483646 + 1
    local function rnd(k) x = x * 16807 % 2147483647; return x % k + 1 end
    local b, nb = mtmsg.buffer(id), mtmsg.buffer(id)
    nb:nonblock(true)
    local done = mtmsg.buffer(doneid)
    local r = mtmsg.newreader()
    local last, floor, got = {}, {}, {}
    for p = 1, np do last[p], floor[p], got[p] = 0, 0, {} end
    local sawstop = false
    local t0 = mtmsg.time()
    local calls = {0, 0, 0, 0, 0, 0, 0, 0}
    -- a taken message: nil (nothing), "stop", or what went wrong
    local function took(p, i)
        if p == nil then return nil end
        if p == "stop" then return "stop" end
        if type(p) ~= "number" or last[p] == nil or type(i) ~= "number" then
            return "bad message " .. tostring(p) .. ", " .. tostring(i)
        end
        if sawstop then return "took (" .. p .. ", " .. i .. ") after peeking stop" end
        if i <= last[p] then
            return "producer " .. p .. ": took " .. i .. " after " .. last[p]
        end
        if i < floor[p] then
            return "producer " .. p .. ": took " .. i .. " after peeking " .. floor[p]
        end
        last[p] = i
        got[p][#got[p] + 1] = i
    end
    -- a peeked message: the head at that moment. Older ones of its producer were all
    -- taken already; the ones this taker took are older.
    local function peeked(p, i)
        if p == nil then return nil end
        if p == "stop" then sawstop = true; return nil end
        if type(p) ~= "number" or last[p] == nil or type(i) ~= "number" then
            return "bad peek " .. tostring(p) .. ", " .. tostring(i)
        end
        if i <= last[p] then
            return "producer " .. p .. ": peeked " .. i .. " after taking " .. last[p]
        end
        if i > floor[p] then floor[p] = i end
    end
    local fav = rnd(8)                              -- half of the calls: one kind
    local err
    while true do
        local m = rnd(2) == 1 and fav or rnd(8)
        calls[m] = calls[m] + 1
        if m == 1 then                              -- blocking, no timeout
            err = took(b:nextmsg())
        elseif m == 2 then                          -- blocking with a timeout
            local p, i = b:nextmsg(30)
            if p == nil then return "nextmsg(30) got nothing in 30 s" end
            err = took(p, i)
        elseif m == 3 then                          -- nonblocking: nothing when busy
            err = took(nb:nextmsg())
        elseif m == 4 then                          -- nonblocking with a timeout
            err = took(nb:nextmsg(30))
        elseif m == 5 then                          -- peek (either mode)
            err = peeked((rnd(2) == 1 and b or nb):peekmsg())
        elseif m == 6 then                          -- through a reader
            local h = rnd(2) == 1 and b or nb
            if r:nextmsg(h, 30) then
                err = took(r:next(2))
            elseif h == b then
                return "reader:nextmsg(b, 30) got nothing in 30 s"
            end
        elseif m == 7 then                          -- the iterator, a few steps
            local h = rnd(2) == 1 and b or nb
            local steps, want, ended = 0, rnd(4), true
            for k, p, i in h:messages(30) do
                if k ~= steps + 1 then return "iterator count " .. k .. " after " .. steps end
                steps = k
                err = took(p, i)
                if err or steps >= want then ended = false; break end
            end
            if ended and h == b then return "messages(30) ended: nothing in 30 s" end
        else                                        -- blocking poll
            err = took(b:nextmsg(0))
        end
        if err then break end
        if mtmsg.time() - t0 > hang then return "hung: no stop after " .. hang .. " s" end
    end
    if err ~= "stop" then return err end
    for p = 1, np do done:addmsg(tid, p, table.concat(got[p], ",")) end
    return "ok", (table.unpack or unpack)(calls)
end

-- Switches the batch off and on until `ctl` gets a message; leaves no limit and no
-- notifier behind.
local function chaos(id, ntfid, ctlid, seed, usefd)
    local mtmsg = require "mtmsg"
    local x = seed % 2147483646 + 1
    local function rnd(k) x = x * 16807 % 2147483647; return x % k + 1 end
    local b, ntf, ctl = mtmsg.buffer(id), mtmsg.buffer(ntfid), mtmsg.buffer(ctlid)
    local limits = {256, 4096, 1e6, 1e9}
    local hasntf, fd, iters, below = false, nil, 0, 0
    -- phases of 64 steps: "toggle" switches the batch off and on, "quiet" leaves it on
    -- (only counts and peeks), so that takers also meet long stretches of fast-path takes
    local quiet = false
    while ctl:msgcnt() == 0 do
        iters = iters + 1
        if iters % 64 == 0 then
            quiet = rnd(2) == 1
            if quiet then
                b:setlimit(nil)
                if hasntf then b:notifier(nil, "<"); hasntf = false end
            end
        end
        local m = rnd(10)
        if quiet and m <= 5 then m = 10 end
        if m == 1 then
            local ok, e = pcall(b.setlimit, b, limits[rnd(#limits)])
            if not ok then
                if not tostring(e):find("is below the", 1, true) then return "setlimit: " .. tostring(e) end
                below = below + 1
            end
        elseif m == 2 then
            b:setlimit(nil)
        elseif m == 3 or m == 4 then
            if hasntf then b:notifier(nil, "<")
            else b:notifier(ntf, "<", rnd(3) == 1 and rnd(100) or 0) end
            hasntf = not hasntf
        elseif m == 5 and usefd and not fd and rnd(100) == 1 then
            fd = b:getfd()                      -- the batch stays off from now on
        elseif m == 6 then
            local n = b:msgcnt()
            local used, cap = b:bytes()
            if n < 0 or used < 0 or cap < 0 then return "bad counts" end
            b:highwater(rnd(4) == 1)
        elseif m == 7 then
            b:peekmsg()
        elseif m == 8 then
            ntf:clear()
        elseif rnd(4) == 1 then
            mtmsg.sleep(0.0002)                 -- pacing: let producers and takers run
        end
    end
    b:setlimit(nil)
    if hasntf then b:notifier(nil, "<") end
    return "ok", iters, below, fd and 1 or 0
end

-- ===== the spec =====

local function join(t, what)
    local r = H.pack(t:join(HANG))
    if r[1] == nil then
        mtmsg.abort(true)                       -- frees blocked threads (they then fail)
        t:join(30)
        error(what .. ": still running after " .. HANG .. " s (hung?)", 2)
    end
    assert(r[1] == true, what .. " failed: " .. tostring(r[2]))
    assert(r[2] == "ok", what .. ": " .. tostring(r[2]))
    return r
end

describe("the takers' batch under a randomized load", function()
    after_each(function() mtmsg.abort(false) end)

    local N = tonumber(os.getenv("BATCH_FUZZ_N") or 20000)
    local ROUNDS = tonumber(os.getenv("BATCH_FUZZ_ROUNDS") or 6)
    local SEED = tonumber(os.getenv("BATCH_FUZZ_SEED") or (os.time() % 1000000))
    local DEBUG = os.getenv("BATCH_DEBUG")
    local usefd = package.config:sub(1, 1) ~= "\\"     -- no wake-up handles on Windows

    for round = 1, ROUNDS do
        local seed = SEED + round - 1
        it("round " .. round .. " (seed " .. seed .. ")", function()
            local thread = H.thread()
            local rnd = rng(seed)
            local np, nt = 1 + rnd(3), 1 + rnd(4)   -- 2-4 producers, 2-5 takers
            local b, ntf, ctl, done = mtmsg.newbuffer(), mtmsg.newbuffer(), mtmsg.newbuffer(),
                                      mtmsg.newbuffer()
            local ctx = "seed " .. seed .. ", " .. np .. " producers, " .. nt .. " takers: "
            local takers, producers = {}, {}
            for j = 1, nt do
                takers[j] = thread.start(taker, b:id(), done:id(), j, np, seed * 31 + j, HANG)
            end
            local fd = usefd and rnd(3) == 1        -- a round in three may open getfd
            local ch = thread.start(chaos, b:id(), ntf:id(), ctl:id(), seed * 37, fd)
            for p = 1, np do producers[p] = thread.start(producer, b:id(), p, N, seed * 41 + p) end
            for p = 1, np do
                local r = join(producers[p], ctx .. "producer " .. p)
                if DEBUG then print(ctx .. "producer " .. p, "waitaddmsg", r[3], "refused", r[4]) end
            end
            ctl:addmsg(true)
            local cr = join(ch, ctx .. "chaos")
            if DEBUG then print(ctx .. "chaos", "iterations", cr[3], "limit below", cr[4], "getfd", cr[5]) end
            for _ = 1, nt do assert(b:addmsg("stop"), ctx .. "stop refused") end
            for j = 1, nt do
                local r = join(takers[j], ctx .. "taker " .. j)
                if DEBUG then
                    print(ctx .. "taker " .. j, "calls", table.concat({H.unpack(r, 3, r.n)}, " "))
                end
            end
            -- every message exactly once
            local seen = {}
            for p = 1, np do seen[p] = {} end
            for _ = 1, nt * np do
                local tid, p, list = done:nextmsg(0)
                assert(tid, ctx .. "a taker's report is missing")
                local s = seen[p]
                for i in list:gmatch("%d+") do
                    i = tonumber(i)
                    assert(not s[i], ctx .. "producer " .. p .. ": message " .. i .. " taken twice")
                    s[i] = tid
                end
            end
            for p = 1, np do
                for i = 1, N do
                    assert(seen[p][i], ctx .. "producer " .. p .. ": message " .. i .. " never taken")
                end
            end
            assert(b:msgcnt() == 0, ctx .. b:msgcnt() .. " messages left")
        end)
    end
end)
