-- Shared helpers for the mtmsg busted specs: error checks, garbage collection, timing
-- and thread joining. Loaded with require "helpers" (tests/run.sh puts tests/ on the path).
local mtmsg = require "mtmsg"

local H = {}

H.unpack = table.unpack or unpack
H.has_integers = math.type ~= nil -- Lua 5.3+: numbers carry an integer/float subtype
H.is_luajit = type(jit) == "table"

-- Seconds a failure may take to show up; never a bound on how fast things must be.
H.TIMEOUT = 10

function H.pack(...)
    return { n = select("#", ...), ... }
end

-- Full collection, twice, so finalizers of objects found dead in the first pass have run.
function H.gc()
    collectgarbage("collect")
    collectgarbage("collect")
end

-- pcalls f(...) and asserts it raised the mtmsg error `kind` (e.g. "object_closed"):
-- a plain string that starts with "mtmsg.error.<kind>", then ends or goes on with ": ".
-- Returns the error string.
function H.checkerr(kind, f, ...)
    local prefix = "mtmsg.error." .. kind
    local ok, err = pcall(f, ...)
    assert(not ok, "expected error " .. prefix .. ", but the call succeeded")
    assert(type(err) == "string", "expected error " .. prefix .. ", got a " .. type(err))
    local rest = err:sub(#prefix + 1)
    assert(err:sub(1, #prefix) == prefix and (rest == "" or rest:sub(1, 2) == ": "),
           "expected error " .. prefix .. ", got: " .. err)
    return err
end

-- pcalls f(...) and asserts it raised an ordinary Lua argument error (not an mtmsg error).
-- With `text`, the message must be exactly `text`, optionally preceded by the
-- "chunk:line: " position that luaL_argerror adds. Returns the error string.
function H.checkargerr(text, f, ...)
    local ok, err = pcall(f, ...)
    assert(not ok, "expected an argument error" .. (text and (" '" .. text .. "'") or "")
                   .. ", but the call succeeded")
    assert(type(err) == "string", "expected an argument error string, got a " .. type(err))
    assert(err:sub(1, 12) ~= "mtmsg.error.", "expected an argument error, got: " .. err)
    if text then
        assert(err == text or err:sub(-(#text + 2)) == ": " .. text,
               "expected argument error '" .. text .. "', got: " .. err)
    else
        assert(err:find("bad argument", 1, true) or err:find("bad self", 1, true),
               "expected an argument error, got: " .. err)
    end
    return err
end

-- Runs f(...) and returns the seconds it took (mtmsg.time) and its packed results.
function H.timed(f, ...)
    local t0 = mtmsg.time()
    local r = H.pack(f(...))
    return mtmsg.time() - t0, r
end

-- Asserts that the packed results r hold exactly the values of the list `expected`
-- (with expected.n values; nils allowed).
function H.same(r, expected, what)
    local n = expected.n or #expected
    assert(r.n == n, (what or "results") .. ": expected " .. n .. " values, got " .. r.n)
    for i = 1, n do
        assert(r[i] == expected[i], (what or "results") .. ": value #" .. i .. " is "
               .. tostring(r[i]) .. ", expected " .. tostring(expected[i]))
    end
end

-- The test-only thread module, loaded on first use.
function H.thread()
    return require "testthread"
end

-- Joins t within 2 * H.TIMEOUT; returns its packed join result. A thread still running
-- then is a failure: rescue() (if given) is called to free it, t is joined once more, the
-- global abort is cleared, and an error is raised.
function H.join(t, rescue)
    local r = H.pack(t:join(2 * H.TIMEOUT))
    if r[1] == nil then
        if rescue then rescue() end
        t:join(H.TIMEOUT)
        mtmsg.abort(false)
        error("thread did not finish in time (still blocked?)", 2)
    end
    return r
end

-- Asserts the packed join result r is a normal return; returns the results.
function H.ok(r)
    assert(r[1] == true, "thread failed: " .. tostring(r[2]))
    return H.pack(H.unpack(r, 2, r.n))
end

-- Asserts the packed join result r is the mtmsg error `kind`.
function H.failed(r, kind)
    assert(r[1] == false, "thread was expected to fail with " .. kind .. ", it returned "
                          .. tostring(r[2]))
    assert(type(r[2]) == "string" and r[2]:find("^mtmsg%.error%." .. kind),
           "expected mtmsg.error." .. kind .. ", got: " .. tostring(r[2]))
end

-- Joins t (within H.TIMEOUT * 2 seconds) and asserts the thread returned normally;
-- returns its packed results.
function H.joinok(t, timeout)
    local r = H.pack(t:join(timeout or 2 * H.TIMEOUT))
    assert(r[1] ~= nil, "thread did not finish in time: " .. tostring(r[2]))
    assert(r[1] == true, "thread failed: " .. tostring(r[2]))
    return H.pack(H.unpack(r, 2, r.n))
end

-- Joins t and asserts the thread raised the mtmsg error `kind`; returns the message.
function H.joinerr(t, kind, timeout)
    local ok, err = t:join(timeout or 2 * H.TIMEOUT)
    assert(ok ~= nil, "thread did not finish in time: " .. tostring(err))
    assert(ok == false, "thread was expected to raise mtmsg.error." .. kind
                        .. " but it returned normally")
    assert(type(err) == "string" and err:find("^mtmsg%.error%." .. kind),
           "thread was expected to raise mtmsg.error." .. kind .. ", got: " .. tostring(err))
    return err
end

return H
