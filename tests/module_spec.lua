-- Module-level functions and fields: _VERSION, _INFO, the error table, type(), time(),
-- sleep(), and the process-wide abort()/isabort().
local mtmsg = require "mtmsg"
local H = require "helpers"
local checkerr, checkargerr = H.checkerr, H.checkargerr

-- Thread body: announces itself on buffer `syncid`, then sleeps long.
local function sleeper(syncid)
    local mtmsg = require "mtmsg"
    local sync = mtmsg.buffer(syncid)
    sync:addmsg("ready")
    mtmsg.sleep(60)
    return "not interrupted"
end

-- Thread body: waits for "go" on buffer `syncid`, then aborts everything.
local function aborter(syncid)
    local mtmsg = require "mtmsg"
    local sync = mtmsg.buffer(syncid)
    assert(sync:nextmsg(10) == "go")
    mtmsg.abort()
    return true
end

describe("mtmsg module", function()
    after_each(function()
        mtmsg.abort(false)
    end)

    it("has _VERSION and _INFO strings", function()
        assert(type(mtmsg._VERSION) == "string")
        assert(mtmsg._VERSION:match("^%d+%.%d+"), "odd version: " .. mtmsg._VERSION)
        assert(type(mtmsg._INFO) == "string" and #mtmsg._INFO > 0)
    end)

    it("has all module functions", function()
        for _, name in ipairs { "newbuffer", "buffer", "newlistener", "listener", "abort",
                                "isabort", "time", "sleep", "type", "newwriter",
                                "newreader" } do
            assert(type(mtmsg[name]) == "function", "missing mtmsg." .. name)
        end
    end)

    it("publishes every error kind in mtmsg.error, has_notifier included", function()
        assert(type(mtmsg.error) == "table")
        for _, kind in ipairs { "ambiguous_name", "message_size", "no_buffers",
                                "has_notifier", "object_closed", "operation_aborted",
                                "out_of_memory", "unknown_object" } do
            assert(mtmsg.error[kind] == "mtmsg.error." .. kind,
                   "mtmsg.error." .. kind .. " is " .. tostring(mtmsg.error[kind]))
        end
    end)

    it("error strings work with string.match as documented", function()
        local lst = mtmsg.newlistener()
        local _, err = pcall(function() lst:nextmsg(0) end)
        assert(err:match(mtmsg.error.no_buffers))
    end)

    describe("type()", function()
        it("returns type() for builtin types", function()
            assert(mtmsg.type(nil) == "nil")
            assert(mtmsg.type(true) == "boolean")
            assert(mtmsg.type(false) == "boolean")
            assert(mtmsg.type(1) == "number")
            assert(mtmsg.type(1.5) == "number")
            assert(mtmsg.type("x") == "string")
            assert(mtmsg.type({}) == "table")
            assert(mtmsg.type(print) == "function")
            assert(mtmsg.type(function() end) == "function")
            assert(mtmsg.type(coroutine.create(function() end)) == "thread")
        end)

        it("names the mtmsg object types", function()
            assert(mtmsg.type(mtmsg.newbuffer()) == "mtmsg.buffer")
            local lst = mtmsg.newlistener()
            assert(mtmsg.type(lst) == "mtmsg.listener")
            assert(mtmsg.type(lst:newbuffer()) == "mtmsg.buffer")
            assert(mtmsg.type(mtmsg.newwriter()) == "mtmsg.writer")
            assert(mtmsg.type(mtmsg.newreader()) == "mtmsg.reader")
        end)

        it("uses a registered __name for foreign userdata, else 'userdata'", function()
            -- io.stdout: registered "FILE*" with __name on 5.3+; no __name on 5.1/5.2/LuaJIT
            local mt = debug.getmetatable(io.stdout)
            local name = type(mt) == "table" and mt.__name
            local expected = "userdata"
            if type(name) == "string" and debug.getregistry()[name] == mt then
                expected = name
            end
            assert(mtmsg.type(io.stdout) == expected,
                   "got " .. tostring(mtmsg.type(io.stdout)) .. ", expected " .. expected)
        end)

        if newproxy then -- Lua 5.1 and LuaJIT only
            it("returns 'userdata' when __name is not in the registry", function()
                local u = newproxy(true)
                getmetatable(u).__name = "mtmsg.buffer"
                assert(mtmsg.type(u) == "userdata")
                local v = newproxy(false)
                assert(mtmsg.type(v) == "userdata")
            end)
        end

        it("without argument is an argument error", function()
            checkargerr(nil, function() mtmsg.type() end)
        end)
    end)

    describe("time()", function()
        it("is wall-clock seconds as a number close to os.time()", function()
            local t = mtmsg.time()
            assert(type(t) == "number")
            if math.type then
                assert(math.type(t) == "float")
            end
            assert(math.abs(t - os.time()) < 2, "time() " .. t .. " vs os.time() " .. os.time())
        end)

        it("resolves at least milliseconds", function()
            local t0 = mtmsg.time()
            mtmsg.sleep(0.02)
            local d = mtmsg.time() - t0
            assert(d >= 0.015 and d < 5, "20 ms sleep measured as " .. d)
        end)
    end)

    describe("sleep()", function()
        it("sleeps for at least the given time", function()
            local d = H.timed(mtmsg.sleep, 0.1)
            assert(d >= 0.09 and d < 5, "sleep(0.1) took " .. d)
        end)

        it("sleep(0) returns at once", function()
            local d = H.timed(mtmsg.sleep, 0)
            assert(d < 5)
        end)

        it("raises operation_aborted when aborted", function()
            mtmsg.abort()
            local d = H.timed(function()
                local err = checkerr("operation_aborted", mtmsg.sleep, 30)
                assert(err == "mtmsg.error.operation_aborted", err)
            end)
            assert(d < 5, "aborted sleep took " .. d)
        end)

        it("is interrupted by abort() from another thread", function()
            local thread = H.thread()
            local sync = mtmsg.newbuffer()
            local t = thread.start(aborter, sync:id())
            sync:addmsg("go")
            local d = H.timed(function()
                checkerr("operation_aborted", mtmsg.sleep, 30)
            end)
            assert(d < 25, "sleep was not interrupted (" .. d .. " s)")
            H.joinok(t)
        end)

        it("in another thread is interrupted by abort() here", function()
            local thread = H.thread()
            local sync = mtmsg.newbuffer()
            local t = thread.start(sleeper, sync:id())
            assert(sync:nextmsg(H.TIMEOUT) == "ready")
            mtmsg.abort()
            H.joinerr(t, "operation_aborted")
        end)
    end)

    describe("abort()/isabort()", function()
        it("sets and clears the global flag", function()
            assert(mtmsg.isabort() == false)
            mtmsg.abort()
            assert(mtmsg.isabort() == true)
            mtmsg.abort(false)
            assert(mtmsg.isabort() == false)
            mtmsg.abort(true)
            assert(mtmsg.isabort() == true)
            mtmsg.abort(false)
            assert(mtmsg.isabort() == false)
        end)

        it("aborts every object and every operation until abort(false)", function()
            local b = mtmsg.newbuffer("glob-abort")
            local lst = mtmsg.newlistener()
            local lb = lst:newbuffer()
            b:addmsg("kept")
            mtmsg.abort()
            assert(b:isabort() == true)
            assert(lst:isabort() == true)
            assert(lb:isabort() == true)
            checkerr("operation_aborted", function() b:addmsg(1) end)
            checkerr("operation_aborted", function() b:setmsg(1) end)
            checkerr("operation_aborted", function() b:nextmsg(0) end)
            checkerr("operation_aborted", function() lb:addmsg(1) end)
            checkerr("operation_aborted", function() lst:nextmsg(0) end)
            checkerr("operation_aborted", mtmsg.newbuffer)
            checkerr("operation_aborted", mtmsg.newlistener)
            checkerr("operation_aborted", mtmsg.buffer, b:id())
            checkerr("operation_aborted", mtmsg.buffer, "glob-abort")
            checkerr("operation_aborted", mtmsg.listener, lst:id())
            checkerr("operation_aborted", function() lst:newbuffer() end)
            mtmsg.abort(false)
            assert(b:isabort() == false)
            assert(lst:isabort() == false)
            assert(lb:isabort() == false)
            assert(b:nextmsg(0) == "kept")
            assert(b:addmsg(1) == true)
            assert(b:nextmsg(0) == 1)
            assert(lb:addmsg(2) == true)
            assert(lst:nextmsg(0) == 2)
            assert(mtmsg.buffer(b:id()):id() == b:id())
            mtmsg.newbuffer()
            mtmsg.newlistener()
        end)

        it("abort(false) also clears the flag of individually aborted objects", function()
            local b = mtmsg.newbuffer()
            local lst = mtmsg.newlistener()
            b:abort()
            lst:abort()
            mtmsg.abort(false)
            assert(b:isabort() == false)
            assert(lst:isabort() == false)
            assert(b:addmsg(1) == true)
        end)

        it("rejects non-boolean flags", function()
            for _, v in ipairs { 1, 0, "true", {} } do
                checkargerr(nil, function() mtmsg.abort(v) end)
                assert(mtmsg.isabort() == false, "abort(" .. tostring(v) .. ") aborted")
            end
        end)
    end)
end)
