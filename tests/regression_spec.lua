-- Regression tests for defects found in review (docs/RELIABILITY.md lists them).
local mtmsg = require "mtmsg"
local thread = require "testthread"

local lua52 = _VERSION ~= "Lua 5.1"          -- __gc on tables (LuaJIT reports 5.1)

-- Makes the collector run very often, so that an allocation inside an mtmsg call
-- runs __gc finalizers; returns a function that restores the defaults.
local function aggressive_gc()
    collectgarbage("restart")
    if _VERSION == "Lua 5.4" then
        collectgarbage("incremental", 1, 1000)         -- (0 would mean "unchanged")
        return function() collectgarbage("incremental", 200, 100) end
    end
    collectgarbage("setpause", 1)
    collectgarbage("setstepmul", 1000)
    return function() collectgarbage("setpause", 200); collectgarbage("setstepmul", 200) end
end

describe("regressions", function()
    it("a grow factor just above 1 does not loop while the lock is held", function()
        -- the capacity used to be multiplied by the factor until it was big enough
        local t = thread.start(function()
            local mtmsg = require "mtmsg"
            local b = mtmsg.newbuffer(16, 1 + 2^-40)
            assert(b:addmsg(("x"):rep(1000000)))
            return #b:nextmsg()
        end)
        local ok, n = t:join(60)
        assert.is_true(ok, n)
        assert.equal(1000000, n)
    end)

    it("lookup by a negative id reports the id as given", function()
        local ok, err = pcall(mtmsg.buffer, -1)
        assert.is_false(ok)
        assert.equal("mtmsg.error.unknown_object: buffer id -1", err)
        ok, err = pcall(mtmsg.listener, -5)
        assert.equal("mtmsg.error.unknown_object: listener id -5", err)
    end)

    it("the notifier type must be a string on every Lua (LuaJIT took any value)", function()
        local b = mtmsg.newbuffer()
        for _, v in ipairs {true, false, 1, {}} do
            local ok, err = pcall(function() b:notifier(nil, v) end)
            assert.is_false(ok)
            assert.truthy(tostring(err):find("bad argument #2 to 'notifier'", 1, true), err)
        end
        b:notifier(nil, "<")                       -- nothing connected: a no-op
    end)

    if lua52 then
        it("a finalizer that sends during another send does not corrupt its message", function()
            local carray = require "carray"
            local b, side = mtmsg.newbuffer(), mtmsg.newbuffer()
            local arr = carray.new("int", {7, 8, 9})
            local mt = {__gc = function() side:addmsg("GC") end}
            local restore = aggressive_gc()
            local bad = 0
            for _ = 1, 3000 do
                for _ = 1, 5 do setmetatable({}, mt) end
                local t = {}
                for k = 1, 64 do t[k + 0.5] = true end    -- allocations without a GC check
                b:addmsg(1, 2, 3, arr)                     -- GC check inside the encoding
                local x, y, z, a = b:nextmsg(0)
                if not (x == 1 and y == 2 and z == 3 and a:get(2) == 8) then bad = bad + 1 end
            end
            restore()
            assert.equal(0, bad)
            assert.is_true(side:msgcnt() > 0)              -- the finalizers did run
        end)

        it("a finalizer that reuses a reader during reader:next does not break it", function()
            local src, big = mtmsg.newbuffer(), mtmsg.newbuffer()
            local rd = mtmsg.newreader()
            local strs = {}
            for i = 1, 40 do strs[i] = ("%031d"):format(i) end
            local size = 2048
            local mt = {__gc = function()
                size = math.min(size * 2, 2^16)
                big:addmsg(("y"):rep(size))
                rd:nextmsg(big, 0)
            end}
            local unpack = table.unpack or unpack
            local restore = aggressive_gc()
            local bad = 0
            for _ = 1, 1000 do
                src:addmsg(unpack(strs))
                rd:nextmsg(src)
                for _ = 1, 3 do setmetatable({}, mt) end
                local t = {}
                for k = 1, 64 do t[k + 0.5] = true end
                local vals = {rd:next(40)}
                -- a nested nextmsg during this call may replace the reader's message,
                -- but the call still hands out the 40 elements it started on; one run
                -- before the call (the table constructor allocates) gives the big
                -- one-element message instead. A mix of the two is the bug.
                if type(vals[1]) == "string" and vals[1]:match("^y+$") then
                    if #vals ~= 1 then bad = bad + 1 end
                else
                    for k = 1, 40 do
                        if vals[k] ~= strs[k] then bad = bad + 1; break end
                    end
                end
            end
            restore()
            assert.equal(0, bad)
        end)
    end
end)
