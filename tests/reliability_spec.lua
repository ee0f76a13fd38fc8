-- Regression tests for the bugs found by the reliability work (docs/RELIABILITY.md):
-- sanitizer, fuzzing, failure-injection and stress findings. Each test names its bug.
local mtmsg = require "mtmsg"
local H = require "helpers"

-- An object whose finalizer runs f (tables have no __gc on 5.1/LuaJIT: newproxy there).
local function with_gc(f)
    if newproxy then
        local p = newproxy(true)
        getmetatable(p).__gc = f
        return p
    end
    return setmetatable({}, {__gc = f})
end

-- Runs f with an eager incremental collector (so finalizers run inside the allocations
-- of f), then restores the previous settings.
local function eager_gc(f)
    local pause = collectgarbage("setpause", 10)
    local mul = collectgarbage("setstepmul", 400)
    local ok, err = pcall(f)
    collectgarbage("setpause", pause)
    collectgarbage("setstepmul", mul)
    H.gc()
    assert(ok, err)
end

local function bigmessage(n)
    local parts = {}
    for i = 1, n do parts[i] = string.rep("x", 100) .. i end
    return parts
end

describe("reliability regressions", function()
    -- Bug 2 (ASan heap-use-after-free): buffer:nextmsg and listener:nextmsg decoded the
    -- message from the per-state scratch buffer; __gc finalizers that ran during the
    -- decode (any Lua allocation) and called addmsg re-encoded into that scratch or freed
    -- it (> 64 KiB): corrupt values, an abort on "corrupt" bytes, or a use after free.
    for _, via in ipairs({"buffer", "listener"}) do
        it("a finalizer that sends during " .. via .. ":nextmsg does not corrupt the message", function()
            local lst = mtmsg.newlistener()
            local b = via == "listener" and lst:newbuffer() or mtmsg.newbuffer()
            local other = mtmsg.newbuffer()
            local parts = bigmessage(3000)
            local fired = 0
            b:addmsg(H.unpack(parts))
            eager_gc(function()
                for _ = 1, 2000 do
                    with_gc(function()
                        fired = fired + 1
                        other:addmsg(string.rep("y", 100000))     -- grows and frees the scratch
                    end)
                end
                local r = H.pack((via == "listener" and lst or b):nextmsg(0))
                assert(r.n == #parts, "got " .. r.n .. " values")
                for i = 1, #parts do
                    assert(r[i] == parts[i], "value " .. i .. " corrupted")
                end
            end)
            assert(fired > 0, "no finalizer ran: the test proves nothing")
            assert(other:msgcnt() == fired)
        end)
    end

    it("a finalizer that receives during nextmsg gets its own message", function()
        local b, other = mtmsg.newbuffer(), mtmsg.newbuffer()
        local parts = bigmessage(2000)
        local got = {}
        b:addmsg(H.unpack(parts))
        eager_gc(function()
            for i = 1, 500 do
                other:addmsg(i, string.rep("z", 1000))
                with_gc(function()
                    local v = other:nextmsg(0)                     -- nested receive
                    if v then got[#got + 1] = v end
                end)
            end
            local r = H.pack(b:nextmsg(0))
            assert(r.n == #parts)
            for i = 1, #parts do assert(r[i] == parts[i], "value " .. i .. " corrupted") end
        end)
        assert(#got > 0, "no finalizer ran: the test proves nothing")
        for i = 2, #got do assert(got[i] == got[i - 1] + 1) end  -- FIFO kept
    end)

    -- Bug 1 (UBSan): pointer arithmetic on the NULL data of a MemBuf that never held
    -- anything (writer:addmsg of an empty writer, reader:next on a fresh reader). Only a
    -- UBSan build (make asan) sees it; here it checks the results.
    it("an empty writer and a fresh reader work", function()
        local b = mtmsg.newbuffer()
        local w, r = mtmsg.newwriter(), mtmsg.newreader()
        assert(select("#", r:next()) == 0)
        assert(w:addmsg(b) == true)
        assert(w:setmsg(b) == true)
        assert(b:msgcnt() == 1)
        assert(r:nextmsg(b, 0) == true)
        assert(select("#", r:next()) == 0)
    end)
    -- A reader's __gc called by hand (debug library) from a finalizer while reader:next
    -- decodes from that reader freed the storage under the decoder (ASan: heap-use-
    -- after-free, found by the API fuzzer with APIFUZZ_DEBUG=2). It is set aside now.
    it("a reader's __gc called by hand during reader:next leaves the decoder its data", function()
        local unpack = table.unpack or unpack
        local vals = {}
        for i = 1, 2000 do vals[i] = string.rep("v", 40) .. i end
        local b, r = mtmsg.newbuffer(), mtmsg.newreader()
        b:addmsg(unpack(vals))
        assert(r:nextmsg(b) == true)
        local gc = debug.getmetatable(r).__gc
        local ran, got = 0, nil
        eager_gc(function()
            for _ = 1, 50 do with_gc(function() ran = ran + 1; gc(r) end) end
            got = H.pack(r:next(#vals))
        end)
        assert(got.n == #vals)
        for i = 1, #vals do assert(got[i] == vals[i], "value " .. i .. " corrupted") end
        assert(ran > 0, "no finalizer ran")
        assert(select("#", r:next()) == 0)              -- emptied by the hand-called __gc
        b:addmsg("again")
        assert(r:nextmsg(b, 0) == true and r:next() == "again")
    end)
end)
