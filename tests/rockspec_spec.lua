-- The rockspec: its source list matches src/*.c (what the Makefile builds), and
-- Debian's luarocks builds and installs a working module from it, offline.
local function sh(cmd)
    local p = assert(io.popen(cmd .. " 2>&1; echo \"rc=$?\""))
    local out = p:read("*a")
    p:close()
    local rc = tonumber(out:match("rc=(%d+)%s*$"))
    return rc, out
end

local luaver = (jit and "5.1") or _VERSION:match("%d+%.%d+")
local interp = os.getenv("MTMSG_TEST_LUA") or ("lua" .. luaver)
local rockspec = "rockspecs/mtmsg-scm-0.rockspec"

describe("rockspec", function()
    it("lists exactly the C sources the Makefile builds", function()
        local text = assert(io.open(rockspec)):read("*a")
        local listed, found = {}, {}
        for f in text:gmatch('"(src/[%w_]+%.c)"') do listed[#listed + 1] = f end
        local _, ls = sh("ls src/*.c")
        for f in ls:gmatch("(src/[%w_]+%.c)") do found[#found + 1] = f end
        table.sort(listed); table.sort(found)
        assert.same(found, listed)
    end)

    it("builds and installs with luarocks make, and the module loads", function()
        local tmp = os.tmpname()
        os.remove(tmp)
        local rc, out = sh(("mkdir -p %s/src && cp -r src include docs rockspecs %s/src/ && cd %s/src && " ..
            "luarocks --lua-version=%s make --tree=%s/tree %s"):format(tmp, tmp, tmp, luaver, tmp, rockspec))
        assert(rc == 0, out)
        local so = ("%s/tree/lib/lua/%s/?.so"):format(tmp, luaver)
        rc, out = sh(("%s -e 'package.cpath=%q; local m = require \"mtmsg\"; " ..
            "local b = m.newbuffer(); b:addmsg(1, \"x\"); local a, s = b:nextmsg(); " ..
            "assert(a == 1 and s == \"x\"); print(m._VERSION)'"):format(interp, so))
        sh("rm -rf " .. tmp)
        assert(rc == 0, out)
        local version = assert(io.open(rockspec)):read("*a"):match("MTMSG_VERSION=\"([^\"]+)\"")
        assert.equal(version, out:match("^(%S+)"))
    end)
end)
