-- Specs of the test-only thread helper tests/mod/testthread.c (no mtmsg involved).
local thread = require "testthread"

-- Busy-waits for the given number of seconds of CPU time.
local function spin(seconds)
  local t0 = os.clock()
  while os.clock() - t0 < seconds do end
end

-- A temporary file name. os.tmpname() on Windows names a file in the root of the
-- current drive, often not writable there: use %TEMP% instead.
local function tmpname()
  local name = os.tmpname()
  local temp = package.config:sub(1, 1) == "\\" and os.getenv("TEMP")
  if temp and name:sub(1, 1) == "\\" then name = temp .. name end
  return name
end

describe("testthread", function()
  it("runs a function and returns its results", function()
    local t = thread.start(function(a, b) return a + b, "sum" end, 2, 3)
    assert.same({true, 5, "sum"}, {t:join()})
    assert.is_true(t:isdone())
  end)

  it("runs a source string with arguments", function()
    local t = thread.start("local a, b = ... return b, a", "x", 7)
    assert.same({true, 7, "x"}, {t:join()})
  end)

  it("round-trips nil, booleans, numbers and binary strings", function()
    local bin = "a\0b\255\n" .. string.rep("z", 1000)
    local t = thread.start(function(...) return select("#", ...), ... end,
                           nil, true, false, 1.5, -3, bin, nil)
    local r = {t:join()}
    assert.same({true, 7, nil, true, false, 1.5, -3, bin, nil}, r)
    assert.equal(9, select("#", t:join()))
  end)

  it("keeps the integer/float subtype on Lua 5.3+", function()
    if not math.type then return end
    local t = thread.start(function(i, f)
      return i, f, math.type(i), math.type(f), math.maxinteger
    end, 3, 3.0)
    local ok, i, f, ti, tf, maxi = t:join()
    assert.is_true(ok)
    assert.equal("integer", ti)
    assert.equal("float", tf)
    assert.equal("integer", math.type(i))
    assert.equal("float", math.type(f))
    assert.equal(math.maxinteger, maxi)
  end)

  it("turns other result types into '<typename>'", function()
    local t = thread.start(function() return {}, print, 1 end)
    assert.same({true, "<table>", "<function>", 1}, {t:join()})
  end)

  it("gives nil to upvalues and keeps globals reachable", function()
    local up = 42
    local t = thread.start(function() return up, type(print) end)
    assert.same({true, nil, "function"}, {t:join()})
  end)

  it("rejects unsupported arguments", function()
    assert.has_error(function() thread.start(function() end, {}) end)
    assert.has_error(function() thread.start(function() end, 1, print) end)
    assert.has_error(function() thread.start(42) end)
    assert.has_error(function() thread.start(print) end)
  end)

  it("propagates errors as false, message", function()
    local t = thread.start(function() error("boom") end)
    local ok, msg = t:join()
    assert.is_false(ok)
    assert.is_string(msg)
    assert.matches("boom", msg)
    local t2 = thread.start(function() error({}) end)
    ok, msg = t2:join()
    assert.is_false(ok)
    assert.matches("^table", msg)
  end)

  it("reports syntax errors in source strings", function()
    local ok, msg = thread.start("return +"):join()
    assert.is_false(ok)
    assert.is_string(msg)
  end)

  it("copies package.path and package.cpath into the thread", function()
    local ok, path, cpath = thread.start("return package.path, package.cpath"):join()
    assert.is_true(ok)
    assert.equal(package.path, path)
    assert.equal(package.cpath, cpath)
  end)

  it("can require C modules from package.cpath inside a thread", function()
    local t = thread.start(function()
      local th = require "testthread"
      return th.start("return 'nested'"):join()
    end)
    assert.same({true, true, "nested"}, {t:join()})
  end)

  it("times out a join and can be joined again later", function()
    -- The thread spins until the flag file is removed (at most 30 s of CPU time), so
    -- the first join times out even where threads are scheduled unfairly (valgrind).
    local flag = tmpname()
    assert(io.open(flag, "w")):close()
    local t = thread.start(function(path)
      local t0 = os.clock()
      while os.clock() - t0 < 30 do
        local f = io.open(path)
        if not f then return "finished" end
        f:close()
        local t1 = os.clock()
        while os.clock() - t1 < 0.001 do end
      end
      return "gave up"
    end, flag)
    assert.same({nil, "timeout"}, {t:join(0.01)})
    assert.is_false(t:isdone())
    spin(0.3)
    assert.same({nil, "timeout"}, {t:join(0.05)})
    -- Windows cannot delete a file while another thread has it open: retry
    local t0 = os.time()
    while not os.remove(flag) do assert(os.time() - t0 < 10, "cannot remove " .. flag) end
    assert.same({true, "finished"}, {t:join()})
    assert.is_true(t:isdone())
    assert.same({true, "finished"}, {t:join(0)})
  end)

  it("returns the same results on every join", function()
    local t = thread.start(function() return 1, "two" end)
    assert.same({true, 1, "two"}, {t:join(5)})
    assert.same({true, 1, "two"}, {t:join()})
  end)

  it("collects unjoined thread objects without waiting", function()
    local done = thread.start(function() return 1 end)
    while not done:isdone() do end
    done = nil
    local running = thread.start(function()
      local t0 = os.clock()
      while os.clock() - t0 < 0.2 do end
    end)
    running = nil
    collectgarbage()
    collectgarbage()
    assert.is_nil(done)
    assert.is_nil(running)
    spin(0.4) -- let the detached thread finish before the process exits
  end)

  it("runs 8 threads at once", function()
    local ts = {}
    for i = 1, 8 do
      ts[i] = thread.start(function(n)
        local s = 0
        for k = 1, n * 10000 do s = s + k end
        return n, s
      end, i)
    end
    for i = 1, 8 do
      local n = i * 10000
      assert.same({true, i, n * (n + 1) / 2}, {ts[i]:join()})
    end
  end)

  it("reports the number of CPUs", function()
    local n = thread.ncpu()
    assert.is_number(n)
    assert.is_true(n >= 1)
  end)
end)
