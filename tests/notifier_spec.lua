-- buffer:notifier(ntf [, type [, threshold]]): buffers as consumers of the Notify C API, with
-- the test-only fake notifier of tests/mod/capiprobe.c and with other buffers as notifiers.
local mtmsg = require "mtmsg"
local probe = require "capiprobe"
local H = require "helpers"
local checkerr, checkargerr = H.checkerr, H.checkargerr

-- Runs f and returns the error it raised (asserting that it raised a plain string).
local function errof(f, ...)
    local ok, err = pcall(f, ...)
    assert(not ok, "expected an error")
    assert(type(err) == "string", "expected a string error")
    return err
end

describe("buffer:notifier", function()

    describe("arguments", function()
        it("rejects everything but a notifier or nil, with exact texts", function()
            local b = mtmsg.newbuffer()
            checkargerr("bad argument #1 to 'notifier' (notifier or nil expected)",
                        function() b:notifier() end)
            for _, v in ipairs { 1, "x", {}, print, mtmsg.newlistener(), mtmsg.newwriter() } do
                checkargerr("bad argument #1 to 'notifier' (notifier expected)",
                            function() b:notifier(v) end)
            end
            checkargerr("bad argument #1 to 'notifier' (notifier expected)",
                        function() b:notifier(false) end)
            checkargerr("bad argument #1 to 'notifier' (notifier api version mismatch)",
                        function() b:notifier(probe.fake("notify", 1, 0)) end)
            checkargerr("bad argument #1 to 'notifier' (invalid notifier)",
                        function() b:notifier(probe.fake("notify", 0, 0)) end)
            checkargerr("bad argument #1 to 'notifier' (invalid notifier)",
                        function() b:notifier(probe.newnotifier("invalid")) end)
            local n = probe.newnotifier()
            checkargerr("bad argument #2 to 'notifier' (invalid option 'x')",
                        function() b:notifier(n, "x") end)
            checkargerr(nil, function() b:notifier(n, ">", "many") end)
            checkargerr(nil, function() b:notifier(n, ">", 1.5) end)
            assert(n:refs() == 1, "failed calls must not keep a reference")
            assert(select("#", b:notifier(n, ">", nil)) == 0)
            assert(select("#", b:notifier(nil)) == 0)
            assert(n:refs() == 1)
        end)

        it("a chained record with a compatible version is accepted", function()
            local b, target = mtmsg.newbuffer(), mtmsg.newbuffer()
            -- a record 5.0 whose next_capi is a buffer's real Notify record: the lookup finds
            -- the record, but toNotifier of that record rejects a non-buffer value
            checkargerr("bad argument #1 to 'notifier' (invalid notifier)",
                        function() b:notifier(probe.fake("notify", 5, 0, target)) end)
        end)

        it("connecting a second notifier of a type raises has_notifier", function()
            local b = mtmsg.newbuffer()
            local n1, n2 = probe.newnotifier(), probe.newnotifier()
            b:notifier(n1)
            checkerr("has_notifier", b.notifier, b, n2)
            checkerr("has_notifier", b.notifier, b, n1, ">")
            assert(H.checkerr("has_notifier", b.notifier, b, n2, ">", 3)
                   == mtmsg.error.has_notifier)
            assert(n2:refs() == 1 and n1:refs() == 2)
            b:notifier(n2, "<")                          -- the other type is free
            checkerr("has_notifier", b.notifier, b, n1, "<")
            b:notifier(nil)
            b:notifier(n2)
            assert(n1:refs() == 1 and n2:refs() == 3)
        end)

        it("connecting on a closed buffer raises object_closed", function()
            local b = mtmsg.newbuffer()
            local n = probe.newnotifier()
            b:close()
            checkerr("object_closed", b.notifier, b, n)
            checkerr("object_closed", b.notifier, b, n, "<")
            assert(n:refs() == 1)
            b:notifier(nil)                              -- disconnecting is always fine
        end)
    end)

    describe("firing", function()
        it('">" fires after every add, in the adding thread', function()
            local b = mtmsg.newbuffer()
            local n = probe.newnotifier()
            b:notifier(n)
            b:addmsg(1)
            assert(n:count() == 1 and n:calledhere())
            b:setmsg(2)
            local w = mtmsg.newwriter()
            w:add(3)
            w:addmsg(b)
            w:add(4)
            w:setmsg(b)
            local ref = probe.ref(b)
            assert(ref:send { { "int", 5 } } == 0)
            assert(ref:notify() == 0)
            assert(n:count() == 6)
            b:nextmsg(0); b:clear(); b:nextmsg(0)
            assert(n:count() == 6, "removals and clear do not fire '>'")
            local t = H.thread().start(function(id)
                require("mtmsg").buffer(id):addmsg("from a thread")
            end, b:id())
            H.joinok(t)
            assert(n:count() == 7 and not n:calledhere())
        end)

        it('"<" fires after every removal, from every taking method', function()
            local lst = mtmsg.newlistener()
            local b = lst:newbuffer()
            local n = probe.newnotifier()
            b:notifier(n, "<")
            for i = 1, 6 do b:addmsg(i) end
            assert(n:count() == 0)
            assert(b:nextmsg(0) == 1)
            assert(lst:nextmsg(0) == 2)
            local r = mtmsg.newreader()
            assert(r:nextmsg(b) and r:next() == 3)
            assert(r:nextmsg(lst) and r:next() == 4)
            local ref = probe.ref(b)
            assert(ref:recv(false, 0) == 0)
            assert(n:count() == 5 and n:calledhere())
            b:nextmsg(0)
            assert(n:count() == 6)
            b:nextmsg(0); lst:nextmsg(0); r:nextmsg(b, 0); ref:recv(false, 0)
            assert(n:count() == 6, "nothing taken, nothing fired")
            b:addmsg(1); b:clear(); b:addmsg(2); b:close()
            assert(n:count() == 6)
        end)

        it('">" threshold: fires when the count after the add is above it', function()
            local b = mtmsg.newbuffer()
            local n = probe.newnotifier()
            b:notifier(n, ">", 2)
            local seen = {}
            for i = 1, 5 do b:addmsg(i); seen[i] = n:count() end
            assert(table.concat(seen, ",") == "0,0,1,2,3")
            b:setmsg(0)                                  -- count 1 afterwards
            assert(n:count() == 3)
            b:notifier(nil)
            b:notifier(n, ">", -4)                       -- negative: always
            b:clear()
            b:addmsg(1)
            assert(n:count() == 4)
        end)

        it('"<" threshold: fires when the count after the removal is below it', function()
            local b = mtmsg.newbuffer()
            local n = probe.newnotifier()
            b:notifier(n, "<", 3)
            for i = 1, 5 do b:addmsg(i) end
            local seen = {}
            for i = 1, 5 do b:nextmsg(0); seen[i] = n:count() end   -- counts 4 3 2 1 0
            assert(table.concat(seen, ",") == "0,0,1,2,3")
            b:notifier(nil, "<")
            b:notifier(n, "<", -1)                       -- <= 0: always
            b:addmsg(1); b:addmsg(2)
            b:nextmsg(0)
            assert(n:count() == 4)
        end)

        it("notifier(nil, type) disconnects only that type", function()
            local b = mtmsg.newbuffer()
            local add, rem = probe.newnotifier(), probe.newnotifier()
            b:notifier(add, ">")
            b:notifier(rem, "<")
            b:notifier(nil, "<")
            assert(rem:refs() == 1 and add:refs() == 2)
            b:addmsg(1); b:nextmsg(0)
            assert(add:count() == 1 and rem:count() == 0)
            b:notifier(rem, "<")
            b:notifier(nil, ">")
            b:addmsg(1); b:nextmsg(0)
            assert(add:count() == 1 and rem:count() == 1)
            b:notifier(nil)
            assert(rem:refs() == 2, "the default type is '>'")
        end)

        it("rc 1 disconnects the notifier; the operation succeeds", function()
            local b = mtmsg.newbuffer()
            local n = probe.newnotifier()
            b:notifier(n)
            n:set(1)
            assert(b:addmsg(1) == true)
            assert(n:count() == 1 and n:refs() == 1)
            b:addmsg(2)
            assert(n:count() == 1)
            b:notifier(n)                                -- free again: no has_notifier
            assert(n:refs() == 2)
            local m = probe.newnotifier()
            b:notifier(m, "<")
            m:set(1)
            assert(b:nextmsg(0) == 1 and m:refs() == 1)
            b:nextmsg(0)
            assert(m:count() == 1)
        end)

        it("other return codes raise after the message was added or removed", function()
            local b = mtmsg.newbuffer()
            local n = probe.newnotifier()
            b:notifier(n)
            n:set(5, "first", "second\0x")
            assert(errof(b.addmsg, b, 1) == "Error while calling notifier: first\nsecond\0x")
            assert(b:msgcnt() == 1)
            n:set(9)
            assert(errof(b.setmsg, b, 2) == "Unknown error while calling notifier. (rc=9)")
            assert(b:msgcnt() == 1 and n:refs() == 2, "still connected")
            local w = mtmsg.newwriter()
            w:add(3)
            n:set(-1, "neg")
            assert(errof(w.addmsg, w, b) == "Error while calling notifier: neg")
            b:notifier(nil)
            b:notifier(n, "<")
            n:set(2, "")
            assert(errof(b.nextmsg, b, 0) == "Error while calling notifier: ")
            assert(b:msgcnt() == 1)
            local lst = mtmsg.newlistener()
            local lb = lst:newbuffer()
            lb:notifier(n, "<")
            lb:addmsg("x")
            n:set(3, "lst")
            assert(errof(lst.nextmsg, lst, 0) == "Error while calling notifier: lst")
            lb:addmsg("y")
            local r = mtmsg.newreader()
            assert(errof(r.nextmsg, r, lb, 0) == "Error while calling notifier: lst")
            assert(r:next() == "y", "the reader holds the message")
            n:set(0)
        end)
    end)

    describe("buffers as notifiers", function()
        it("a buffer receives one empty message per event", function()
            local b, sink = mtmsg.newbuffer(), mtmsg.newbuffer()
            b:notifier(sink, ">")
            b:notifier(sink, "<")
            b:addmsg(1); b:addmsg(2)
            assert(sink:msgcnt() == 2)
            b:nextmsg(0)
            assert(sink:msgcnt() == 3)
            for _ = 1, 3 do assert(select("#", sink:nextmsg(0)) == 0) end
            local thread = H.thread()
            local t = thread.start(function(id)
                local m = require "mtmsg"
                return select("#", m.buffer(id):nextmsg(10))
            end, sink:id())
            mtmsg.sleep(0.05)
            b:addmsg(3)
            assert(H.joinok(t)[1] == 0, "a waiter is woken by the notification")
        end)

        it("a closed notifier buffer is dropped (rc 1), an aborted one raises operation_aborted", function()
            local b, sink = mtmsg.newbuffer(), mtmsg.newbuffer()
            b:notifier(sink)
            sink:close()
            assert(b:addmsg(1) == true)
            local other = mtmsg.newbuffer()
            b:notifier(other)                            -- the closed one was disconnected
            other:abort()
            assert(errof(b.addmsg, b, 2) == "mtmsg.error.operation_aborted: notifier "
                   .. "mtmsg.buffer(id=" .. other:id() .. ") is aborted")
            assert(b:msgcnt() == 2)
            other:abort(false)
            b:addmsg(3)
            assert(other:msgcnt() == 1)
        end)

        it("buffers of one listener notify each other without deadlock", function()
            local lst = mtmsg.newlistener()
            local b1, b2 = lst:newbuffer(), lst:newbuffer()
            b1:notifier(b2, ">")
            b1:notifier(b2, "<")
            b2:notifier(b1, "<", 1)                      -- when b2 becomes empty
            b1:addmsg("a")
            assert(b2:msgcnt() == 1)
            assert(lst:nextmsg(0) == "a")                -- b1 first, then "<" notifies b2
            assert(b2:msgcnt() == 2 and b1:msgcnt() == 0)
            assert(select("#", lst:nextmsg(0)) == 0)     -- from b2
            assert(select("#", b2:nextmsg(0)) == 0)      -- b2 now empty: notifies b1
            assert(b1:msgcnt() == 1 and b2:msgcnt() == 1) -- which notified b2 in turn
            b1:notifier(nil, ">"); b1:notifier(nil, "<"); b2:notifier(nil, "<")
        end)

        it("a buffer may notify itself on removal", function()
            local b = mtmsg.newbuffer()
            b:notifier(b, "<")
            b:addmsg(1)
            assert(b:nextmsg(0) == 1)
            assert(b:msgcnt() == 1)
            assert(select("#", b:nextmsg(0)) == 0 and b:msgcnt() == 1)
            b:notifier(nil, "<")                         -- breaks the reference cycle
        end)

        it("notifier rings end with an error instead of endless recursion", function()
            local b = mtmsg.newbuffer()
            b:notifier(b)                                -- every add adds again
            local err = errof(b.addmsg, b, 1)
            assert(err:sub(1, 30) == "Error while calling notifier: ")
            assert(err:sub(-32) == "notifier calls nested too deeply", err)
            assert(b:msgcnt() > 1 and b:msgcnt() < 100)
            b:notifier(nil)
            local x, y = mtmsg.newbuffer(), mtmsg.newbuffer()
            x:notifier(y); y:notifier(x)
            errof(x.addmsg, x, 1)
            local rc, text = probe.ref(x):notify()
            assert(rc == 999 and text:sub(-32) == "notifier calls nested too deeply")
            x:notifier(nil); y:notifier(nil)
            x:clear(); y:clear()
            x:addmsg(1)
            assert(y:msgcnt() == 0 and x:msgcnt() == 1)
        end)

        it("notifiers are called after the lock is released", function()
            local lst = mtmsg.newlistener()
            local b, other = lst:newbuffer(), lst:newbuffer()
            local n = probe.newnotifier()
            -- "<": the notifier adds (nonblock) to the same buffer and to a sibling
            b:notifier(n, "<")
            n:reenter(probe.ref(b), "send")
            b:addmsg(1)
            assert(b:nextmsg(0) == 1)
            assert(n:reenterrc() == 0, "the lock was still held: rc " .. n:reenterrc())
            n:reenter(probe.ref(other), "send")
            assert(b:nextmsg(0) == "reenter")
            assert(n:reenterrc() == 0 and other:nextmsg(0) == "reenter")
            b:addmsg(2)
            assert(lst:nextmsg(0) == 2 and n:reenterrc() == 0)
            assert(other:nextmsg(0) == "reenter" and b:msgcnt() == 0)
            b:notifier(nil, "<")
            -- ">": the notifier takes (nonblock) the message just added
            b:notifier(n, ">")
            n:reenter(probe.ref(b), "recv")
            b:addmsg(3)
            assert(n:reenterrc() == 0 and b:msgcnt() == 0)
            n:reenter(nil)
            b:notifier(nil)
        end)
    end)

    describe("lifetime", function()
        it("a connection keeps the notifier alive; freeing the buffer releases it", function()
            local b = mtmsg.newbuffer()
            local n = probe.newnotifier()
            b:notifier(n)
            b:notifier(n, "<")
            assert(n:refs() == 3)
            b = nil
            H.gc()
            assert(n:refs() == 1)
        end)

        it("chains of buffer notifiers are released without deadlock", function()
            local lst = mtmsg.newlistener()
            local ids = {}
            local function make()
                local a, b, c = mtmsg.newbuffer(), lst:newbuffer(), lst:newbuffer()
                local d = mtmsg.newbuffer()
                a:notifier(b); b:notifier(c); c:notifier(d, "<"); b:notifier(d, "<")
                c:addmsg("pending")                      -- c stays with its listener
                ids = { a:id(), b:id(), c:id(), d:id() }
            end
            make()
            H.gc()
            for i = 1, 3 do checkerr("unknown_object", mtmsg.buffer, ids[i]) end
            assert(mtmsg.buffer(ids[4]):msgcnt() == 0, "d is held by c, which is pending")
            H.gc()
            assert(lst:nextmsg(0) == "pending", "c's pending message is still delivered")
            checkerr("no_buffers", lst.nextmsg, lst, 0)
            checkerr("unknown_object", mtmsg.buffer, ids[4])
        end)

        it("a notifier buffer without Lua references stays findable while connected", function()
            local b = mtmsg.newbuffer()
            local id
            do
                local sink = mtmsg.newbuffer("notifier-sink")
                id = sink:id()
                b:notifier(sink)
            end
            H.gc()
            b:addmsg(1)
            assert(mtmsg.buffer(id):msgcnt() == 1)
            assert(mtmsg.buffer("notifier-sink"):id() == id)
            H.gc()
            b:notifier(nil)
            H.gc()
            checkerr("unknown_object", mtmsg.buffer, id)
        end)
    end)
end)
