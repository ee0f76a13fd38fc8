-- Stress: many producer and consumer threads (testthread, one lua_State each) over
-- standalone buffers, a fixed-size buffer, a listener with member buffers and short-lived
-- listener buffers whose handles are dropped while messages are pending (orphans), while a
-- chaos thread aborts and un-aborts buffers, the listener and the whole module, and closes
-- one buffer. Producers also drop and collect their handles and look them up again.
-- Receivers use blocking calls, random timeouts, timeout 0, nonblock handles and readers.
-- At the end: every message stored (addmsg/writer:addmsg returned true) is delivered
-- exactly once (count, sum and sum of squares of the sequence numbers per producer and
-- target), in per-producer FIFO order per buffer, with intact payloads; the closed
-- buffer delivers at most once; no thread hangs (every join has a deadline: a watchdog).
--
-- Short by default (MTMSG_STRESS_MESSAGES per producer, default 5000); long with
-- MTMSG_STRESS_SECONDS=n (producers send until n seconds have passed).
-- MTMSG_STRESS_SEED=n repeats a run (the seed is printed when a run fails).
local mtmsg = require "mtmsg"
local H = require "helpers"

local SECONDS = tonumber(os.getenv("MTMSG_STRESS_SECONDS") or "")
local MESSAGES = tonumber(os.getenv("MTMSG_STRESS_MESSAGES") or "") or 5000
local SEED = tonumber(os.getenv("MTMSG_STRESS_SEED") or "") or math.floor(mtmsg.time() * 1000) % 2147483647
local NPRODUCERS = 4
-- a hang is a failure: generous for valgrind/TSan, but finite
local WATCHDOG = (SECONDS or 10) * 3 + 120

-- ===== thread bodies (no upvalues: they run in fresh states) =====

-- Calls f(...) until it does not raise operation_aborted (chaos aborts for a while).
-- Other errors propagate. Shared by all bodies as source text, loaded inside the thread.
local COMMON = [[
local mtmsg = require "mtmsg"
local pack = table.pack or function(...) return {n = select("#", ...), ...} end
local unpack = table.unpack or unpack
-- mtmsg.sleep raises operation_aborted during a global abort: then just go on
local function nap(s) pcall(mtmsg.sleep, s) end
local function retry(f, ...)
    while true do
        local r = pack(pcall(f, ...))
        if r[1] then return unpack(r, 2, r.n) end
        if type(r[2]) ~= "string" or not r[2]:find("^mtmsg%.error%.operation_aborted") then
            error(r[2], 0)
        end
        nap(0)
    end
end
local function payload(seq, len) return string.rep(string.char(97 + seq % 26), len) end
return retry, payload, nap
]]

local function producer(common, pid, seed, nmsg, seconds, ids, lid, vid)
    local retry, payload, nap = (loadstring or load)(common)()
    local mtmsg = require "mtmsg"
    math.randomseed(seed)
    local names = {"B1", "B2", "B3", "LB1", "LB2", "LB3", "V"}
    local idlist = {}
    for id in ids:gmatch("%d+") do idlist[#idlist + 1] = tonumber(id) end
    idlist[#idlist + 1] = vid
    local handles, nb
    local function lookup()
        handles, nb = {}, {}
        for i, id in ipairs(idlist) do
            handles[i] = retry(mtmsg.buffer, id)
            nb[i] = retry(mtmsg.buffer, id)          -- a second handle, nonblock
            local ok, err = pcall(retry, nb[i].nonblock, nb[i], true)
            if not ok and not err:find("^mtmsg%.error%.object_closed") then error(err, 0) end
        end
    end
    lookup()
    local w = mtmsg.newwriter(64, 2)
    local sent, seqs = {}, {}
    local vclosed = false
    local deadline = seconds and mtmsg.time() + seconds
    -- Sends one message to handle h (key for the accounting); false if closed.
    local function send(h, hnb, key)
        local seq = (seqs[key] or 0) + 1
        local len = math.random(0, 40)
        if math.random(50) == 1 and not key:find(":B2$") then len = 3000 end  -- B2: 256 bytes
        local p = payload(seq, len)
        while true do
            local how = math.random(3)
            local ok, r = pcall(function()
                if how == 1 then return h:addmsg(key, seq, p) end
                if how == 2 then return hnb:addmsg(key, seq, p) end          -- may be busy
                w:clear(); w:add(key); w:add(seq, p)
                return w:addmsg(h)
            end)
            if ok and r then break end
            if not ok then
                if r:find("^mtmsg%.error%.object_closed") then return false end
                if not r:find("^mtmsg%.error%.operation_aborted") then error(r, 0) end
            end
            nap(math.random() < 0.5 and 0 or 0.0005)   -- busy, full or aborted
        end
        seqs[key] = seq
        sent[key] = seq
        return true
    end
    local n, eph = 0, 0
    while (deadline and mtmsg.time() < deadline) or (not deadline and n < nmsg) do
        n = n + 1
        local t = math.random(#names)
        if t == 7 and vclosed then t = math.random(6) end
        local key = "p" .. pid .. ":" .. names[t]
        if not send(handles[t], nb[t], key) then vclosed = true end
        if n % 250 == 0 then                          -- drop every handle, collect, look up
            handles, nb = nil, nil
            collectgarbage()
            lookup()
        end
        if n % 300 == 0 then                          -- a listener buffer left as an orphan
            eph = eph + 1
            local l = retry(mtmsg.listener, lid)
            local e = retry(l.newbuffer, l)
            local key2 = "p" .. pid .. ":E" .. eph
            for _ = 1, 5 do assert(send(e, e, key2)) end
            e, l = nil, nil
            collectgarbage()
            collectgarbage()
        end
    end
    local out = {}
    for key, count in pairs(sent) do out[#out + 1] = key .. "=" .. count end
    return table.concat(out, " ")
end

-- Receives from one source until told to stop; returns the digest
-- "key count sum sumsq;..." and the number of order or payload violations.
-- how: "block" (nextmsg() until "STOP"), "timeout", "zero", "nonblock", "reader",
-- "listener", "lreader", "victim".
local function consumer(common, how, id, ctlid, seed)
    local retry, payload, nap = (loadstring or load)(common)()
    local mtmsg = require "mtmsg"
    math.randomseed(seed)
    local ctl = retry(mtmsg.buffer, ctlid)
    local src
    if how == "listener" or how == "lreader" then src = retry(mtmsg.listener, id)
    else src = retry(mtmsg.buffer, id) end
    local nbsrc = how == "nonblock" and retry(mtmsg.buffer, id) or nil
    if nbsrc then retry(nbsrc.nonblock, nbsrc, true) end
    local r = mtmsg.newreader()
    local acc, last, bad = {}, {}, 0
    local function got(key, seq, p)
        if key == "STOP" then return "stop" end
        if type(key) ~= "string" or type(seq) ~= "number" then bad = bad + 1 return end
        if last[key] and seq <= last[key] then bad = bad + 1 end       -- FIFO per producer+buffer
        last[key] = seq
        if p ~= payload(seq, #p) then bad = bad + 1 end
        local a = acc[key] or {0, 0, 0}
        a[1], a[2], a[3] = a[1] + 1, a[2] + seq, a[3] + seq * seq
        acc[key] = a
    end
    local function take(wait)
        if how == "reader" or how == "lreader" then
            if r:nextmsg(src, wait) then return r:next(3) end
            return
        end
        if how == "nonblock" and wait == 0 then return nbsrc:nextmsg() end
        return src:nextmsg(wait)
    end
    local stopping = false
    while true do
        local wait
        if how == "block" then wait = nil
        elseif stopping then wait = 0.02
        elseif how == "zero" or how == "nonblock" then wait = 0
        else wait = math.random() * 0.01 end
        local ok, key, seq, p = pcall(take, wait)
        if not ok then
            if key:find("^mtmsg%.error%.object_closed") and how == "victim" then break end
            if not key:find("^mtmsg%.error%.operation_aborted") then error(key, 0) end
            nap(0)
        elseif key ~= nil then
            if got(key, seq, p) == "stop" then break end
        elseif how ~= "block" then
            if stopping then break end                 -- drained: no producer is left
            if ctl:msgcnt() > 0 then stopping = true end
            if how == "zero" or how == "nonblock" then nap(0.0002) end
        end
    end
    local out = {}
    local function num(x)                              -- exact digits, no exponent
        if math.type and math.type(x) == "integer" then return tostring(x) end
        return ("%.0f"):format(x)
    end
    for key, a in pairs(acc) do
        out[#out + 1] = key .. " " .. num(a[1]) .. " " .. num(a[2]) .. " " .. num(a[3])
    end
    return table.concat(out, "\n"), bad
end

-- Aborts and un-aborts buffers, the listener and the module at random, closes the victim
-- once, until the stop buffer gets a message. Leaves nothing aborted.
local function chaos(common, ids, lid, vid, stopid, seed)
    local _, _, nap = (loadstring or load)(common)()
    local mtmsg = require "mtmsg"
    math.randomseed(seed)
    local stop = mtmsg.buffer(stopid)
    local bs = {}
    for id in ids:gmatch("%d+") do bs[#bs + 1] = mtmsg.buffer(tonumber(id)) end
    local l = mtmsg.listener(lid)
    local v = mtmsg.buffer(vid)
    local closed, rounds = false, 0
    while stop:msgcnt() == 0 do
        rounds = rounds + 1
        local what = math.random(20)
        if what <= 12 then
            local b = bs[math.random(#bs)]
            b:abort(true); nap(math.random() * 0.002); b:abort(false)
        elseif what <= 17 then
            l:abort(true); nap(math.random() * 0.002); l:abort(false)
        elseif what <= 19 then
            mtmsg.abort(true); nap(math.random() * 0.001); mtmsg.abort(false)
        elseif not closed and rounds > 10 then
            v:close()
            closed = true
        end
        nap(math.random() * 0.003)
    end
    if not closed then v:close() end
    mtmsg.abort(false)
    for _, b in ipairs(bs) do b:abort(false) end
    l:abort(false)
    return rounds
end

-- ===== the run =====

-- 1^2 + ... + n^2 = n(n+1)(2n+1)/6, exact: on 5.3+ in integers (long runs exceed 2^53);
-- nil where only doubles exist and the value is beyond 2^53 (then it is not compared).
local function sumsq(n)
    local a, b, c = n, n + 1, 2 * n + 1
    if a % 2 == 0 then a = a / 2 else b = b / 2 end
    if a % 3 == 0 then a = a / 3 elseif b % 3 == 0 then b = b / 3 else c = c / 3 end
    if math.tointeger then return math.tointeger(a) * math.tointeger(b) * math.tointeger(c) end
    local r = a * b * c
    if r < 2 ^ 53 then return r end
    return nil
end

local function parse_sent(s, into)
    for key, count in s:gmatch("(%S+)=(%d+)") do into[key] = tonumber(count) end
end

describe("stress", function()
    it(("producers, consumers, listeners, orphans, abort and close (%s)"):format(
        SECONDS and (SECONDS .. " s") or (MESSAGES .. " messages per producer")), function()
        local thread = H.thread()
        finally(function() mtmsg.abort(false) end)    -- never leave the module aborted
        math.randomseed(SEED)
        local t0 = mtmsg.time()
        local lst = mtmsg.newlistener()
        local B = {mtmsg.newbuffer(), mtmsg.newbuffer(256, 0), mtmsg.newbuffer(),
                   lst:newbuffer(), lst:newbuffer(64, 1), lst:newbuffer()}
        local V = mtmsg.newbuffer()
        local ctl, chaosstop = mtmsg.newbuffer(), mtmsg.newbuffer()
        local ids = {}
        for i, b in ipairs(B) do ids[i] = b:id() end
        local idstr = table.concat(ids, " ")
        local function why(what, ok, err)
            return ("%s: %s (seed %d)"):format(what, tostring(err), SEED)
        end

        -- consumers first, then the chaos, then the producers
        local consumers = {}
        local function consume(how, id)
            consumers[#consumers + 1] = {how = how,
                t = thread.start(consumer, COMMON, how, id, ctl:id(), math.random(1e9))}
        end
        consume("block", B[1]:id()); consume("block", B[1]:id())
        consume("timeout", B[2]:id())
        consume("nonblock", B[3]:id()); consume("reader", B[3]:id()); consume("zero", B[3]:id())
        consume("listener", lst:id()); consume("lreader", lst:id())
        consume("victim", V:id())
        local ch = thread.start(chaos, COMMON, idstr, lst:id(), V:id(), chaosstop:id(), math.random(1e9))
        local producers = {}
        for p = 1, NPRODUCERS do
            producers[p] = thread.start(producer, COMMON, p, math.random(1e9), MESSAGES, SECONDS,
                                        idstr, lst:id(), V:id())
        end

        -- producers done (watchdog)
        local sent = {}
        for p = 1, NPRODUCERS do
            local r = H.pack(producers[p]:join(WATCHDOG))
            if r[1] ~= true then mtmsg.abort(true) end
            assert(r[1] == true, why("producer " .. p, r[1], r[2]))
            parse_sent(r[2], sent)
        end
        -- the chaos thread may be inside a global abort right now: retry until it is not
        while true do
            local ok, err = pcall(chaosstop.addmsg, chaosstop, "stop")
            if ok then break end
            assert(tostring(err):find("^mtmsg%.error%.operation_aborted"), err)
        end
        local r = H.pack(ch:join(WATCHDOG))
        assert(r[1] == true, why("chaos", r[1], r[2]))
        local rounds = r[2]
        mtmsg.abort(false)
        for _, b in ipairs(B) do b:abort(false) end
        lst:abort(false)
        -- stop: sentinels for the blocking consumers, the flag for the others
        B[1]:addmsg("STOP"); B[1]:addmsg("STOP")
        ctl:addmsg("stop")

        local recv = {}                               -- key -> {count, sum, sumsq}
        local bad = 0
        for _, c in ipairs(consumers) do
            local res = H.pack(c.t:join(WATCHDOG))
            if res[1] ~= true then mtmsg.abort(true) end
            assert(res[1] == true, why("consumer " .. c.how, res[1], res[2]))
            bad = bad + res[3]
            for key, n, s, q in res[2]:gmatch("([^\n ]+) (%d+) (%d+) (%d+)") do
                local a = recv[key] or {0, 0, 0}          -- (tonumber: integers on 5.3+)
                a[1], a[2], a[3] = a[1] + tonumber(n), a[2] + tonumber(s), a[3] + tonumber(q)
                recv[key] = a
            end
        end
        assert(bad == 0, bad .. " order or payload violations (seed " .. SEED .. ")")

        -- exactly once (at most once for the closed buffer V)
        local total, keys, victim = 0, 0, 0
        for key, n in pairs(sent) do
            local a = recv[key] or {0, 0, 0}
            if key:find(":V$") then
                assert(a[1] <= n, key .. ": " .. a[1] .. " received, only " .. n .. " sent")
                victim = victim + a[1]
            else
                local q = sumsq(n)
                assert(a[1] == n and a[2] == n * (n + 1) / 2 and (q == nil or a[3] == q),
                       ("%s: sent 1..%d, received %d (sum %d, sum of squares %d) (seed %d)")
                       :format(key, n, a[1], a[2], a[3], SEED))
            end
            total, keys = total + n, keys + 1
        end
        for key in pairs(recv) do assert(sent[key], key .. ": received but never sent") end
        for i, b in ipairs(B) do assert(b:msgcnt() == 0, "B" .. i .. " not drained") end
        assert(select("#", lst:nextmsg(0)) == 0)

        local secs = mtmsg.time() - t0
        print(("\nstress: %d producers, %d consumers, 1 chaos thread (%d rounds); %d messages "
               .. "stored over %d producer/target pairs, %d of them to the closed buffer "
               .. "delivered; %.1f s; seed %d"):format(NPRODUCERS, #consumers, rounds, total,
               keys, victim, secs, SEED))
    end)
end)
