-- The process-wide registry: ids, lookup by id and by name, ambiguous names, separate
-- name spaces for buffers and listeners, binary names and the exact error details.
local mtmsg = require "mtmsg"
local H = require "helpers"
local checkerr, checkargerr = H.checkerr, H.checkargerr

-- Creates n buffers and n listeners, drops them and returns the set of their ids.
local function dropped_ids(n)
    local ids = {}
    for _ = 1, n do
        ids[mtmsg.newbuffer():id()] = true
        ids[mtmsg.newlistener():id()] = true
    end
    return ids
end

describe("registry", function()
    describe("ids", function()
        it("are unique integers shared by buffers and listeners", function()
            local seen, objs = {}, {}
            for i = 1, 200 do
                local o = (i % 2 == 0) and mtmsg.newbuffer() or mtmsg.newlistener()
                local lst = mtmsg.newlistener()
                objs[#objs + 1] = o
                objs[#objs + 1] = lst
                objs[#objs + 1] = lst:newbuffer()
            end
            for _, o in ipairs(objs) do
                local id = o:id()
                assert(type(id) == "number" and id % 1 == 0, tostring(id))
                if math.type then assert(math.type(id) == "integer") end
                assert(not seen[id], "id " .. id .. " given twice")
                seen[id] = true
            end
        end)

        it("are large, not small counts, and below 2^53", function()
            for _, o in ipairs { mtmsg.newbuffer(), mtmsg.newlistener() } do
                local id = o:id()
                assert(id > 1000, "id " .. id .. " is a small number")
                assert(id < 2 ^ 53, "id " .. id .. " is not below 2^53")
            end
        end)

        it("are never reused", function()
            local old = dropped_ids(100)
            H.gc()
            local keep = {}
            for _ = 1, 100 do
                local b, l = mtmsg.newbuffer(), mtmsg.newlistener()
                assert(not old[b:id()] and not old[l:id()], "an id was reused")
                keep[#keep + 1] = b
                keep[#keep + 1] = l
            end
        end)
    end)

    describe("lookup", function()
        it("finds buffers by id and by name", function()
            local b = mtmsg.newbuffer("reg-b1")
            local byid = mtmsg.buffer(b:id())
            local byname = mtmsg.buffer("reg-b1")
            assert(mtmsg.type(byid) == "mtmsg.buffer" and mtmsg.type(byname) == "mtmsg.buffer")
            assert(byid:id() == b:id() and byname:id() == b:id())
            assert(byid:name() == "reg-b1")
            b:addmsg("via original")
            assert(byname:nextmsg(0) == "via original")
            byid:addmsg("via id")
            assert(b:nextmsg(0) == "via id")
        end)

        it("accepts an integer-valued float id", function()
            local b = mtmsg.newbuffer()
            local l = mtmsg.newlistener()
            assert(mtmsg.buffer(b:id() + 0.0):id() == b:id())
            assert(mtmsg.listener(l:id() + 0.0):id() == l:id())
        end)

        it("finds listeners by id and by name", function()
            local l = mtmsg.newlistener("reg-l1")
            local byid, byname = mtmsg.listener(l:id()), mtmsg.listener("reg-l1")
            assert(mtmsg.type(byid) == "mtmsg.listener")
            assert(byid:id() == l:id() and byname:id() == l:id())
            local b = l:newbuffer()
            b:addmsg(7)
            assert(byname:nextmsg(0) == 7)
        end)

        it("finds listener buffers among the buffers", function()
            local l = mtmsg.newlistener()
            local b = l:newbuffer("reg-lb")
            assert(mtmsg.buffer("reg-lb"):id() == b:id())
            assert(mtmsg.buffer(b:id()):id() == b:id())
            mtmsg.buffer("reg-lb"):addmsg("x")
            assert(l:nextmsg(0) == "x")
        end)

        it("keeps separate name spaces for buffers and listeners", function()
            local b = mtmsg.newbuffer("reg-same")
            local l = mtmsg.newlistener("reg-same")
            assert(mtmsg.buffer("reg-same"):id() == b:id())
            assert(mtmsg.listener("reg-same"):id() == l:id())
        end)

        it("does not find a listener as buffer or a buffer as listener", function()
            local b = mtmsg.newbuffer("reg-only-buffer")
            local l = mtmsg.newlistener("reg-only-listener")
            local err = checkerr("unknown_object", mtmsg.buffer, l:id())
            assert(err == "mtmsg.error.unknown_object: buffer id " .. l:id(), err)
            err = checkerr("unknown_object", mtmsg.listener, b:id())
            assert(err == "mtmsg.error.unknown_object: listener id " .. b:id(), err)
            checkerr("unknown_object", mtmsg.buffer, "reg-only-listener")
            checkerr("unknown_object", mtmsg.listener, "reg-only-buffer")
        end)

        it("raises unknown_object with exact details", function()
            local err = checkerr("unknown_object", mtmsg.buffer, "reg-nosuch")
            assert(err == 'mtmsg.error.unknown_object: buffer name "reg-nosuch"', err)
            err = checkerr("unknown_object", mtmsg.buffer, 123)
            assert(err == "mtmsg.error.unknown_object: buffer id 123", err)
            err = checkerr("unknown_object", mtmsg.listener, "reg-nosuch")
            assert(err == 'mtmsg.error.unknown_object: listener name "reg-nosuch"', err)
            err = checkerr("unknown_object", mtmsg.listener, 7)
            assert(err == "mtmsg.error.unknown_object: listener id 7", err)
        end)

        it("forgets collected objects", function()
            local bid = mtmsg.newbuffer("reg-gone-b"):id()
            local lid = mtmsg.newlistener("reg-gone-l"):id()
            H.gc()
            checkerr("unknown_object", mtmsg.buffer, bid)
            checkerr("unknown_object", mtmsg.buffer, "reg-gone-b")
            checkerr("unknown_object", mtmsg.listener, lid)
            checkerr("unknown_object", mtmsg.listener, "reg-gone-l")
        end)
    end)

    describe("names", function()
        it("two live buffers with one name make lookup ambiguous", function()
            local b1 = mtmsg.newbuffer("dup")
            local b2 = mtmsg.newbuffer("dup")
            local err = checkerr("ambiguous_name", mtmsg.buffer, "dup")
            assert(err == 'mtmsg.error.ambiguous_name: buffer name "dup"', err)
            assert(mtmsg.buffer(b1:id()):name() == "dup") -- ids still work
            b1 = nil
            H.gc()
            assert(mtmsg.buffer("dup"):id() == b2:id())
        end)

        it("two live listeners with one name make lookup ambiguous", function()
            local l1 = mtmsg.newlistener("dupl")
            local l2 = mtmsg.newlistener("dupl")
            local err = checkerr("ambiguous_name", mtmsg.listener, "dupl")
            assert(err == 'mtmsg.error.ambiguous_name: listener name "dupl"', err)
            l2 = nil
            H.gc()
            assert(mtmsg.listener("dupl"):id() == l1:id())
        end)

        it("a listener buffer and a plain buffer share one name space", function()
            local l = mtmsg.newlistener()
            local b1 = l:newbuffer("dupmix")
            local b2 = mtmsg.newbuffer("dupmix")
            checkerr("ambiguous_name", mtmsg.buffer, "dupmix")
            assert(b1:id() ~= b2:id())
        end)

        it("are binary-safe", function()
            local b = mtmsg.newbuffer("reg\0bin\255")
            local l = mtmsg.newlistener("reg\0bin\255")
            assert(b:name() == "reg\0bin\255")
            assert(l:name() == "reg\0bin\255")
            assert(mtmsg.buffer("reg\0bin\255"):id() == b:id())
            assert(mtmsg.listener("reg\0bin\255"):id() == l:id())
            checkerr("unknown_object", mtmsg.buffer, "reg")
            checkerr("unknown_object", mtmsg.buffer, "reg\0bin")
            checkerr("unknown_object", mtmsg.listener, "reg")
        end)

        it("lookup by name stays usable with many objects", function()
            local keep = {}
            for i = 1, 5000 do keep[i] = mtmsg.newbuffer("reg-many-" .. i) end
            for i = 1, 5000, 7 do
                assert(mtmsg.buffer("reg-many-" .. i):id() == keep[i]:id())
            end
        end)
    end)

    describe("argument checks", function()
        it("mtmsg.buffer takes a string or an integer-valued number", function()
            checkargerr(nil, mtmsg.buffer)
            for _, v in ipairs { true, false, {}, 1.5, print } do
                checkargerr(nil, mtmsg.buffer, v)
            end
            checkargerr(nil, mtmsg.buffer, nil)
        end)

        it("mtmsg.listener takes a string or an integer-valued number", function()
            checkargerr(nil, mtmsg.listener)
            for _, v in ipairs { true, false, {}, 1.5, print } do
                checkargerr(nil, mtmsg.listener, v)
            end
            checkargerr(nil, mtmsg.listener, nil)
        end)
    end)
end)
