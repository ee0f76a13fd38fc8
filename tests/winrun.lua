-- A plain-Lua runner for the busted specs in tests/, for places without busted (the
-- Windows build run under wine: scripts/wintest.sh). It implements the part of busted
-- and luassert that the specs use:
--   describe/context, it/spec/test, pending, before_each, after_each, setup/strict_setup,
--   teardown/strict_teardown, lazy_setup/lazy_teardown, finally (inside it);
--   assert(v, msg) and assert.<modifiers>.<name>(...) with the modifiers is, are, was,
--   has, does, not, no (joined by "." or "_", as in assert.is_not.equals, assert.has_no.errors)
--   and the names equals/equal, same, true, false, nil, truthy, falsy, string, number,
--   table, function, boolean, userdata, matches/match, error/errors, error_matches,
--   near, unique.
-- Order and semantics follow busted 2: a describe body runs when its turn comes (after
-- the blocks before it ran), setup/teardown run once around a block's children,
-- before_each outermost first, after_each innermost first, finally after the test. Each
-- spec file runs in its own environment, and modules it loaded are unloaded after it
-- (busted's "insulate" for files).
-- Usage: lua tests/winrun.lua [--cpath=P] [--lpath=P] [-v] spec.lua...
--   --cpath/--lpath are prepended to package.cpath/package.path (tests/?.lua is always
--   added to package.path). -v prints every test. The last line is "N passed, M failed";
--   as in tests/run.sh, pending tests and errors outside tests (in a describe body or a
--   hook) count as failed. Exit status 0 only when nothing failed.

local unpack = table.unpack or unpack
local verbose = false
local files = {}
local lpath, cpath = "", ""
for _, a in ipairs(arg) do
    if a:sub(1, 8) == "--cpath=" then cpath = a:sub(9) .. ";" .. cpath
    elseif a:sub(1, 8) == "--lpath=" then lpath = a:sub(9) .. ";" .. lpath
    elseif a == "-v" then verbose = true
    else files[#files + 1] = a end
end
package.path = lpath .. "tests/?.lua;" .. package.path
package.cpath = cpath .. package.cpath

-- ===== luassert subset =====

local function fmt(v)
    if type(v) == "string" then return string.format("(string) %q", v) end
    return "(" .. type(v) .. ") " .. tostring(v)
end

local function deepcompare(a, b, seen)
    if a == b then return true end
    if type(a) ~= "table" or type(b) ~= "table" then return false end
    seen = seen or {}
    if seen[a] == b then return true end
    seen[a] = b
    for k, v in pairs(a) do
        if not deepcompare(v, b[k], seen) then return false end
    end
    for k in pairs(b) do
        if a[k] == nil then return false end
    end
    return true
end

local function dump(v, depth)
    if type(v) ~= "table" then return fmt(v) end
    depth = depth or 0
    if depth > 2 then return tostring(v) end
    local parts = {}
    for k, x in pairs(v) do parts[#parts + 1] = "[" .. tostring(k) .. "] = " .. dump(x, depth + 1) end
    table.sort(parts)
    return "{ " .. table.concat(parts, ", ") .. " }"
end

-- Each assertion: function(...) -> ok, detail (detail describes the values).
local checks = {}
function checks.equals(expected, actual)
    return actual == expected, "Expected: " .. fmt(expected) .. "\nPassed in: " .. fmt(actual)
end
checks.equal = checks.equals
function checks.same(expected, actual)
    return deepcompare(expected, actual),
           "Expected: " .. dump(expected) .. "\nPassed in: " .. dump(actual)
end
checks["true"] = function(v) return v == true, "Passed in: " .. fmt(v) end
checks["false"] = function(v) return v == false, "Passed in: " .. fmt(v) end
checks["nil"] = function(v) return v == nil, "Passed in: " .. fmt(v) end
checks.truthy = function(v) return not not v, "Passed in: " .. fmt(v) end
checks.falsy = function(v) return not v, "Passed in: " .. fmt(v) end
for _, t in ipairs { "string", "number", "table", "function", "boolean", "userdata", "thread" } do
    checks[t] = function(v) return type(v) == t, "Passed in: " .. fmt(v) end
end
function checks.matches(pattern, actual, init, plain)
    if type(actual) == "number" then actual = tostring(actual) end
    local ok = type(actual) == "string" and actual:find(pattern, init, plain) ~= nil
    return ok, "Pattern: " .. fmt(pattern) .. "\nPassed in: " .. fmt(actual)
end
checks.match = checks.matches
function checks.error(f, expected)
    local ok, err = pcall(f)
    if ok then return false, "the function did not raise" end
    if expected == nil then return true, "Raised: " .. fmt(err) end
    local e = err
    if type(e) == "string" and type(expected) == "string" then e = e:gsub("^.-:%d+: ", "", 1) end
    return deepcompare(expected, e), "Expected error: " .. fmt(expected) .. "\nRaised: " .. fmt(err)
end
checks.errors = checks.error
function checks.error_matches(f, pattern, init, plain)
    local ok, err = pcall(f)
    if ok then return false, "the function did not raise" end
    return type(err) == "string" and err:find(pattern, init, plain) ~= nil,
           "Pattern: " .. fmt(pattern) .. "\nRaised: " .. fmt(err)
end
checks.matches_error = checks.error_matches
function checks.near(expected, actual, tolerance)
    return type(actual) == "number" and math.abs(actual - expected) <= tolerance,
           "Expected: " .. fmt(expected) .. " +/- " .. fmt(tolerance) .. "\nPassed in: " .. fmt(actual)
end
function checks.unique(list)
    for i = 1, #list do
        for j = i + 1, #list do
            if deepcompare(list[i], list[j]) then return false, "entries " .. i .. " and " .. j .. " are the same" end
        end
    end
    return true, "all entries differ"
end
-- how many arguments each assertion takes before its optional message
local nargs = { equals = 2, equal = 2, same = 2, matches = 2, match = 2, error = 1, errors = 1,
                error_matches = 2, matches_error = 2, near = 3, unique = 1 }

local modifiers = { is = true, are = true, was = true, has = true, does = true, ["not"] = "neg", no = "neg" }

local Failure = {}  -- metatable of assertion failures (counted like busted's failures)
Failure.__tostring = function(f) return f.msg end

local function fail(msg, level)
    local info = debug.getinfo(level + 1, "Sl")
    if info and info.currentline and info.currentline > 0 then
        msg = info.short_src .. ":" .. info.currentline .. ": " .. msg
    end
    error(setmetatable({ msg = msg }, Failure), level + 1)
end

local function runassert(tokens, ...)
    local neg, names = false, {}
    for _, t in ipairs(tokens) do
        if modifiers[t] == "neg" then neg = not neg
        elseif not modifiers[t] then names[#names + 1] = t end
    end
    local name = table.concat(names, "_")
    local check = checks[name]
    if not check then error("winrun: unknown assertion assert." .. table.concat(tokens, "."), 3) end
    local ok, detail = check(...)
    if neg then ok = not ok end
    if not ok then
        local msg = select((nargs[name] or 1) + 1, ...)
        fail((msg and tostring(msg) .. "\n" or "") .. "assert" .. (neg and " not " or " ")
             .. name .. " failed.\n" .. detail, 3)
    end
    return ...
end

local function proxy(tokens)
    return setmetatable({}, {
        __index = function(_, key)
            local t = { unpack(tokens) }
            for w in tostring(key):gmatch("[^_]+") do t[#t + 1] = w end
            return proxy(t)
        end,
        __call = function(_, ...)
            if #tokens == 0 then -- assert(v, msg, ...): the plain assert
                local v, msg = ...
                if not v then fail(msg ~= nil and tostring(msg) or "assertion failed!", 2) end
                return ...
            end
            return runassert(tokens, ...)
        end,
    })
end
local luassert = proxy({})

-- ===== busted subset =====

local Pending = {}  -- metatable of pending() raised inside a test

local passed, failures, errors, pendings = 0, 0, 0, 0
local curpath
local report = {}   -- failure texts, printed at the end

local function traceback(e)
    if getmetatable(e) == Failure or getmetatable(e) == Pending then return e end
    return debug.traceback(tostring(e), 2)
end

-- Runs f under xpcall; returns "success", "failure", "error" or "pending", and the text.
local function safe(f, ...)
    local args = { n = select("#", ...), ... }
    local ok, e = xpcall(function() return f(unpack(args, 1, args.n)) end, traceback)
    if ok then return "success" end
    if getmetatable(e) == Pending then return "pending", e.msg end
    if getmetatable(e) == Failure then return "failure", e.msg end
    return "error", tostring(e)
end

local function fullname(block, name)
    local parts = { name }
    while block and block.name do
        table.insert(parts, 1, block.name)
        block = block.parent
    end
    return table.concat(parts, " ")
end

local function record(status, where, text)
    if status == "success" then
        passed = passed + 1
    else
        if status == "failure" then failures = failures + 1
        elseif status == "pending" then pendings = pendings + 1
        else errors = errors + 1 end
        report[#report + 1] = status:upper() .. ": " .. curpath .. ": " .. where
                              .. (text and ("\n" .. text) or "")
    end
    if verbose then print(status, curpath .. ": " .. where) end
end

local current  -- the block whose body is running (children are added to it)
local fileenv  -- the environment of the spec file being run

local function newblock(kind, name, fn, parent)
    return { kind = kind, name = name, fn = fn, parent = parent, children = {},
             before_each = {}, after_each = {}, setup = {}, teardown = {},
             lazy_setup = {}, lazy_teardown = {} }
end

local function addchild(kind, name, fn)
    if not current then error(kind .. " outside a describe block", 3) end
    current.children[#current.children + 1] = newblock(kind, name, fn, current)
end

local function runhooks(list, where)
    local ok = true
    for _, h in ipairs(list) do
        local status, text = safe(h)
        if status ~= "success" then record("error", where, text); ok = false end
    end
    return ok
end

-- lazy_setup of the block and its ancestors, each once, before the first test under it
local function lazysetup(b)
    if not b then return true end
    if not lazysetup(b.parent) then return false end
    if b.lazy_done == nil then b.lazy_done = runhooks(b.lazy_setup, fullname(b, "lazy_setup")) end
    return b.lazy_done
end

local runblock

local function runtest(t)
    local parent = t.parent
    if not lazysetup(parent) then return end
    local chain = {}
    local b = parent
    while b do table.insert(chain, 1, b); b = b.parent end
    local where = fullname(parent, t.name)
    local ok, upto = true, #chain
    for i, blk in ipairs(chain) do
        if not runhooks(blk.before_each, where .. " (before_each)") then ok = false; upto = i; break end
    end
    if ok then
        local fin
        fileenv.finally = function(f) fin = f end
        local status, text = safe(t.fn)
        fileenv.finally = nil
        if fin then
            local s2, t2 = safe(fin)
            if s2 ~= "success" and status == "success" then status, text = s2, t2 end
        end
        record(status, where, text)
    end
    for i = upto, 1, -1 do runhooks(chain[i].after_each, where .. " (after_each)") end
end

function runblock(b)
    local saved = current
    current = b
    local status, text = safe(b.fn)
    current = saved
    if status ~= "success" then
        record(status == "pending" and "pending" or "error", fullname(b, ""), text)
        return
    end
    if runhooks(b.setup, fullname(b, "setup")) then
        for _, c in ipairs(b.children) do
            if c.kind == "describe" then runblock(c)
            elseif c.kind == "it" then runtest(c)
            else record("pending", fullname(b, c.name)) end
        end
    end
    if b.lazy_done ~= nil then runhooks(b.lazy_teardown, fullname(b, "lazy_teardown")) end
    runhooks(b.teardown, fullname(b, "teardown"))
end

local function hook(kind)
    return function(fn)
        if not current then error(kind .. " outside a describe block", 2) end
        local list = current[kind]
        list[#list + 1] = fn
    end
end

local function makeenv()
    local env = setmetatable({}, { __index = _G })
    local function describe(name, fn) addchild("describe", name, fn) end
    local function it(name, fn)
        if fn == nil then addchild("pending", name) else addchild("it", name, fn) end
    end
    env.describe, env.context, env.insulate, env.expose = describe, describe, describe, describe
    env.it, env.spec, env.test = it, it, it
    env.pending = function(name, fn)
        if current then addchild("pending", name) -- pending("name") in a describe body
        else error(setmetatable({ msg = tostring(name) }, Pending), 2) end -- inside a test
    end
    env.before_each, env.after_each = hook("before_each"), hook("after_each")
    env.setup, env.strict_setup = hook("setup"), hook("setup")
    env.teardown, env.strict_teardown = hook("teardown"), hook("teardown")
    env.lazy_setup, env.lazy_teardown = hook("lazy_setup"), hook("lazy_teardown")
    env.assert = luassert
    return env
end

local function loadspec(path, env)
    if setfenv then -- Lua 5.1, LuaJIT
        local f, err = loadfile(path)
        if f then setfenv(f, env) end
        return f, err
    end
    return loadfile(path, "bt", env)
end

local t0 = os.time()
for _, path in ipairs(files) do
    local before = { p = passed, f = failures + errors + pendings }
    local loaded = {}
    for k in pairs(package.loaded) do loaded[k] = true end
    fileenv, curpath = makeenv(), path
    local f, err = loadspec(path, fileenv)
    if not f then
        record("error", "loading", err)
    else
        -- the file is the outermost block: its code registers the top-level blocks
        runblock(newblock("describe", nil, f, nil))
    end
    fileenv = nil
    for k in pairs(package.loaded) do
        if not loaded[k] then package.loaded[k] = nil end
    end
    print(string.format("%-40s %4d passed, %d failed", path, passed - before.p,
                        failures + errors + pendings - before.f))
    io.stdout:flush()
end

for _, r in ipairs(report) do print("\n" .. r) end
print(string.format("\n%d successes / %d failures / %d errors / %d pending (%d s)",
                    passed, failures, errors, pendings, os.time() - t0))
print(string.format("%d passed, %d failed", passed, failures + errors + pendings))
os.exit(failures + errors + pendings == 0 and 0 or 1)
