-- Object lifetime: an object lives as long as one handle does, whatever state the other
-- handles were in; after the last handle is collected, lookup raises unknown_object.
-- A full collection runs after each step.
local mtmsg = require "mtmsg"
local H = require "helpers"
local checkerr, pack, same, gc = H.checkerr, H.pack, H.same, H.gc

describe("lifetime", function()
    it("a buffer survives through a second handle with another state", function()
        local h = { mtmsg.newbuffer("gc-b") }
        local id = h[1]:id()
        h[2] = mtmsg.buffer(id)
        gc()
        h[2]:nonblock()
        h[1]:addmsg("one")
        gc()
        h[1] = nil
        gc()
        assert(h[2]:isnonblock() == true)
        assert(h[2]:msgcnt() == 1)
        assert(h[2]:nextmsg() == "one")
        gc()
        same(pack(h[2]:nextmsg()), { n = 0 }) -- nonblock: returns at once
        assert(h[2]:addmsg("two") == true)
        gc()
        assert(mtmsg.buffer(id):nextmsg(0) == "two")
        gc()
        assert(mtmsg.buffer("gc-b"):id() == id)
        gc()
        h[2] = nil
        gc()
        checkerr("unknown_object", mtmsg.buffer, id)
        checkerr("unknown_object", mtmsg.buffer, "gc-b")
    end)

    it("the first handle survives when the second is collected", function()
        local h = { mtmsg.newbuffer("gc-b2") }
        local id = h[1]:id()
        h[2] = mtmsg.buffer("gc-b2")
        h[2]:nonblock()
        h[2]:addmsg("x")
        gc()
        h[2] = nil
        gc()
        assert(h[1]:isnonblock() == false)
        assert(h[1]:nextmsg(0) == "x")
        gc()
        h[1] = nil
        gc()
        checkerr("unknown_object", mtmsg.buffer, id)
    end)

    it("an aborted or closed buffer is still collected", function()
        local h = { mtmsg.newbuffer("gc-ab"), mtmsg.newbuffer("gc-cl") }
        local ida, idc = h[1]:id(), h[2]:id()
        h[1]:abort()
        h[2]:close()
        gc()
        h[1], h[2] = nil, nil
        gc()
        checkerr("unknown_object", mtmsg.buffer, ida)
        checkerr("unknown_object", mtmsg.buffer, idc)
        checkerr("unknown_object", mtmsg.buffer, "gc-ab")
        checkerr("unknown_object", mtmsg.buffer, "gc-cl")
    end)

    it("a listener survives through a second handle with another state", function()
        local h = { mtmsg.newlistener("gc-l") }
        local id = h[1]:id()
        local b = h[1]:newbuffer()
        h[2] = mtmsg.listener(id)
        h[2]:nonblock()
        gc()
        b:addmsg("m")
        h[1] = nil
        gc()
        assert(h[2]:isnonblock() == true)
        assert(h[2]:nextmsg() == "m")
        gc()
        same(pack(h[2]:nextmsg()), { n = 0 })
        assert(mtmsg.listener("gc-l"):id() == id)
        gc()
        h[2] = nil
        gc()
        checkerr("unknown_object", mtmsg.listener, id)
        checkerr("unknown_object", mtmsg.listener, "gc-l")
        -- the buffer outlives its listener and still works
        assert(b:addmsg(1) == true)
        assert(b:nextmsg(0) == 1)
        gc()
    end)

    it("a listener buffer lives through a handle from lookup", function()
        local lst = mtmsg.newlistener()
        local h = { lst:newbuffer("gc-lb") }
        local id = h[1]:id()
        h[2] = mtmsg.buffer(id)
        h[1]:addmsg(1)
        h[1] = nil
        gc()
        assert(lst:nextmsg(0) == 1)
        h[2]:addmsg(2)
        gc()
        assert(lst:nextmsg(0) == 2)
        gc()
        h[2] = nil
        gc()
        checkerr("unknown_object", mtmsg.buffer, id)
        checkerr("no_buffers", function() lst:nextmsg(0) end)
    end)

    it("writers and readers are collected like Lua values", function()
        local b = mtmsg.newbuffer()
        local h = { mtmsg.newwriter(), mtmsg.newreader() }
        h[1]:add(string.rep("w", 100000))
        h[1]:addmsg(b)
        h[1]:add("pending")
        h[2]:nextmsg(b, 0)
        h[1], h[2] = nil, nil
        gc()
        assert(b:msgcnt() == 0)
        b:addmsg("fine")
        assert(b:nextmsg(0) == "fine")
    end)

    it("many short-lived objects leave nothing behind", function()
        local ids = {}
        for i = 1, 2000 do
            local lst = mtmsg.newlistener()
            local b = lst:newbuffer("gc-many")
            b:addmsg(i)
            if i % 2 == 0 then b:close() end
            ids[#ids + 1] = b:id()
            ids[#ids + 1] = lst:id()
        end
        gc()
        checkerr("unknown_object", mtmsg.buffer, "gc-many")
        checkerr("unknown_object", mtmsg.buffer, ids[1])
        checkerr("unknown_object", mtmsg.listener, ids[2])
        checkerr("unknown_object", mtmsg.buffer, ids[#ids - 1])
    end)
end)
