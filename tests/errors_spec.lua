-- Bad input never crashes: every public function and method called with arguments of the
-- wrong type raises an ordinary Lua argument error, and the objects stay usable.
local mtmsg = require "mtmsg"
local H = require "helpers"
local checkargerr = H.checkargerr

local METHODS = {
    buffer = { "id", "name", "addmsg", "setmsg", "msgcnt", "clear", "nextmsg", "nonblock",
               "isnonblock", "close", "abort", "isabort", "getfd", "pollfd", "events",
               "timeout" },
    listener = { "id", "name", "newbuffer", "nextmsg", "nonblock", "isnonblock", "clear",
                 "close", "abort", "isabort", "getfd", "pollfd", "events", "timeout" },
    writer = { "add", "addmsg", "setmsg", "clear" },
    reader = { "next", "nextmsg", "clear" },
}

describe("bad arguments", function()
    after_each(function()
        mtmsg.abort(false) -- in case a bad flag was taken for true
    end)

    local objs = {
        buffer = mtmsg.newbuffer(),
        listener = mtmsg.newlistener(),
        writer = mtmsg.newwriter(),
        reader = mtmsg.newreader(),
    }
    local keep = objs.listener:newbuffer() -- so that objs.listener has a buffer

    for tname, names in pairs(METHODS) do
        it("methods of " .. tname .. " reject a wrong self", function()
            local obj = objs[tname]
            local wrong = { 1, "x", {}, true, print, io.stdout, coroutine.create(function() end) }
            for other, o in pairs(objs) do
                if other ~= tname then wrong[#wrong + 1] = o end
            end
            for _, m in ipairs(names) do
                local f = obj[m]
                assert(type(f) == "function", tname .. ":" .. m .. " is missing")
                checkargerr(nil, f)
                checkargerr(nil, f, nil)
                for _, w in ipairs(wrong) do
                    checkargerr(nil, f, w)
                end
            end
        end)
    end

    -- { label, function that makes the bad call }
    local b, lst, w, r = objs.buffer, objs.listener, objs.writer, objs.reader
    local calls = {
        { "newbuffer({})", function() mtmsg.newbuffer({}) end },
        { "newbuffer(true)", function() mtmsg.newbuffer(true) end },
        { "newbuffer(print)", function() mtmsg.newbuffer(print) end },
        { "newbuffer('n', {})", function() mtmsg.newbuffer("n", {}) end },
        { "newbuffer('n', 'x')", function() mtmsg.newbuffer("n", "x") end },
        { "newbuffer('n', 10, {})", function() mtmsg.newbuffer("n", 10, {}) end },
        { "newbuffer('n', 10, 'x')", function() mtmsg.newbuffer("n", 10, "x") end },
        { "newbuffer(10, {})", function() mtmsg.newbuffer(10, {}) end },
        { "newbuffer(10, true)", function() mtmsg.newbuffer(10, true) end },
        { "lst:newbuffer({})", function() lst:newbuffer({}) end },
        { "lst:newbuffer(true)", function() lst:newbuffer(true) end },
        { "lst:newbuffer('n', 'x')", function() lst:newbuffer("n", "x") end },
        { "lst:newbuffer(10, {})", function() lst:newbuffer(10, {}) end },
        { "newlistener({})", function() mtmsg.newlistener({}) end },
        { "newlistener(true)", function() mtmsg.newlistener(true) end },
        { "newlistener(print)", function() mtmsg.newlistener(print) end },
        { "buffer()", function() mtmsg.buffer() end },
        { "buffer({})", function() mtmsg.buffer({}) end },
        { "buffer(true)", function() mtmsg.buffer(true) end },
        { "buffer(1.5)", function() mtmsg.buffer(1.5) end },
        { "listener()", function() mtmsg.listener() end },
        { "listener({})", function() mtmsg.listener({}) end },
        { "listener(false)", function() mtmsg.listener(false) end },
        { "listener(2.5)", function() mtmsg.listener(2.5) end },
        { "newwriter({})", function() mtmsg.newwriter({}) end },
        { "newwriter(true)", function() mtmsg.newwriter(true) end },
        { "newwriter('')", function() mtmsg.newwriter("") end },
        { "newwriter('x')", function() mtmsg.newwriter("x") end },
        { "newwriter(10, {})", function() mtmsg.newwriter(10, {}) end },
        { "newwriter(10, 'x')", function() mtmsg.newwriter(10, "x") end },
        { "newreader({})", function() mtmsg.newreader({}) end },
        { "newreader(true)", function() mtmsg.newreader(true) end },
        { "newreader('x')", function() mtmsg.newreader("x") end },
        { "newreader(10, {})", function() mtmsg.newreader(10, {}) end },
        { "sleep()", function() mtmsg.sleep() end },
        { "sleep({})", function() mtmsg.sleep({}) end },
        { "sleep('x')", function() mtmsg.sleep("x") end },
        { "sleep(true)", function() mtmsg.sleep(true) end },
        { "type()", function() mtmsg.type() end },
        { "abort(1)", function() mtmsg.abort(1) end },
        { "abort('x')", function() mtmsg.abort("x") end },
        { "abort({})", function() mtmsg.abort({}) end },
        { "b:nextmsg({})", function() b:nextmsg({}) end },
        { "b:nextmsg(true)", function() b:nextmsg(true) end },
        { "b:nextmsg('x')", function() b:nextmsg("x") end },
        { "b:nextmsg(0, {})", function() b:nextmsg(0, {}) end },
        { "b:nextmsg(0, 1)", function() b:nextmsg(0, 1) end },
        { "b:nextmsg(0, b)", function() b:nextmsg(0, b) end },
        { "b:nonblock(1)", function() b:nonblock(1) end },
        { "b:nonblock('x')", function() b:nonblock("x") end },
        { "b:abort(1)", function() b:abort(1) end },
        { "b:abort({})", function() b:abort({}) end },
        { "b:addmsg(setmetatable({}, {}))", function() b:addmsg(setmetatable({}, {})) end },
        { "b:setmsg(print, {f = error})", function() b:setmsg(print, {f = function() end}) end },
        { "lst:nextmsg({})", function() lst:nextmsg({}) end },
        { "lst:nextmsg(true)", function() lst:nextmsg(true) end },
        { "lst:nextmsg(0, {})", function() lst:nextmsg(0, {}) end },
        { "lst:nextmsg(0, 'x')", function() lst:nextmsg(0, "x") end },
        { "lst:nonblock(1)", function() lst:nonblock(1) end },
        { "lst:abort('x')", function() lst:abort("x") end },
        { "w:add({{}, setmetatable({}, {})})", function() w:add({{}, setmetatable({}, {})}) end },
        { "w:addmsg()", function() w:addmsg() end },
        { "w:addmsg({})", function() w:addmsg({}) end },
        { "w:addmsg(lst)", function() w:addmsg(lst) end },
        { "w:addmsg(w)", function() w:addmsg(w) end },
        { "w:setmsg(1)", function() w:setmsg(1) end },
        { "w:setmsg(r)", function() w:setmsg(r) end },
        { "r:nextmsg()", function() r:nextmsg() end },
        { "r:nextmsg({})", function() r:nextmsg({}) end },
        { "r:nextmsg(w)", function() r:nextmsg(w) end },
        { "r:nextmsg(b, {})", function() r:nextmsg(b, {}) end },
        { "r:nextmsg(b, true)", function() r:nextmsg(b, true) end },
        { "r:nextmsg(lst, 'x')", function() r:nextmsg(lst, "x") end },
        { "r:next({})", function() r:next({}) end },
        { "r:next(true)", function() r:next(true) end },
        { "r:next(1, {})", function() r:next(1, {}) end },
        { "r:next(1, 2)", function() r:next(1, 2) end },
    }

    for _, c in ipairs(calls) do
        it(c[1] .. " is an argument error", function()
            checkargerr(nil, c[2])
        end)
    end

    it("leaves everything usable", function()
        mtmsg.abort(false)
        assert(mtmsg.isabort() == false)
        assert(b:isabort() == false and b:isnonblock() == false)
        assert(b:addmsg(1, "x") == true)
        local x, y = b:nextmsg(0)
        assert(x == 1 and y == "x")
        assert(keep:addmsg(2) == true)
        assert(lst:nextmsg(0) == 2)
        w:add(3)
        assert(w:addmsg(b) == true)
        assert(r:nextmsg(b, 0) == true and r:next() == 3)
    end)
end)
