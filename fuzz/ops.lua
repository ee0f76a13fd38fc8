-- fuzz/ops.lua: the model behind fuzz_ops (see fuzz_ops.c). Returns a function that
-- interprets a byte string as a sequence of buffer, listener, writer and reader
-- operations in one thread, runs each against mtmsg and against a plain-Lua model of
-- the documented behaviour, and raises on the first difference: results, errors,
-- msgcnt, FIFO order per buffer, round-robin order of listeners, fixed-size accounting
-- (the byte accounting of 0.4.3), orphaned listener buffers, lookups by id and
-- name, abort and close flags. Every receive uses timeout 0 or a nonblock handle.
local mtmsg = require "mtmsg"

-- What one message (seq, str) costs a fixed buffer: the byte accounting of mtmsg 0.4.3
-- (docs/REFERENCE.md, "Message sizes") for a 64-bit build: an integer 0..255 takes 2
-- bytes, any other 9; a string 2 + len up to 255 bytes, else 9 + len; the header 1
-- byte while the elements take < 255 bytes, else 9.
local function intsize(i)
    if i >= 0 and i <= 255 then return 2 end
    return 9
end
local function strsize(len)
    if len <= 255 then return 2 + len end
    return 9 + len
end
local function framesize(seq, len)
    local payload = intsize(seq) + strsize(len)
    return (payload < 255 and 1 or 9) + payload
end

local FIXED = 64        -- the size of fixed buffers (grow 0)

return function(data)
    local pos = 1
    local function byte()
        local b = data:byte(pos) or 0
        pos = pos + 1
        return b
    end

    local buffers, listeners = {}, {}   -- model records, in creation order
    local gabort = false
    local seq = 0
    local step = 0
    local W = mtmsg.newwriter()
    local R = mtmsg.newreader()

    local function fail(fmt, ...)
        error(("step %d: " .. fmt):format(step, ...), 0)
    end
    local function kind_of(err)
        return type(err) == "string" and err:match("^mtmsg%.error%.([%w_]+)") or tostring(err)
    end
    -- pcall f and compare its outcome with the expected error kind (nil: must succeed)
    local function call(expect, f, ...)
        local r = table.pack(pcall(f, ...))
        if expect then
            if r[1] then fail("expected error %s, got success", expect) end
            if kind_of(r[2]) ~= expect then fail("expected error %s, got %s", expect, tostring(r[2])) end
            return nil
        end
        if not r[1] then fail("unexpected error: %s", tostring(r[2])) end
        return table.unpack(r, 2, r.n)
    end

    local function pick(list)
        if #list == 0 then return nil end
        return list[byte() % #list + 1]
    end
    local function live(list)
        local t = {}
        for _, rec in ipairs(list) do if #rec.handles > 0 then t[#t + 1] = rec end end
        return t
    end
    local function newmsg()
        seq = seq + 1
        local len = byte()
        local big = byte()
        if big >= 250 then len = len * 300 + 70000 elseif big >= 200 then len = len * 8 end
        return {seq = seq, len = len}
    end
    local function payload(m)
        return string.rep(string.char(65 + m.seq % 26), m.len)
    end
    local function used(b)
        local u = 0
        for _, m in ipairs(b.q) do u = u + framesize(m.seq, m.len) end
        return u
    end
    local function checkmsg(m, s, str, what)
        if s ~= m.seq or str ~= payload(m) then
            fail("%s: got (%s, %s bytes), expected (%d, %d bytes)", what, tostring(s),
                 tostring(str and #str), m.seq, m.len)
        end
    end

    -- listener ready list (round robin)
    local function ready_remove(l, b)
        for i, x in ipairs(l.ready) do if x == b then table.remove(l.ready, i); return end end
    end
    local function ready_has(l, b)
        for _, x in ipairs(l.ready) do if x == b then return true end end
        return false
    end
    local function detach(b)
        local l = b.lst
        if l then
            ready_remove(l, b)
            for i, x in ipairs(l.members) do if x == b then table.remove(l.members, i) break end end
        end
        b.gone = true
    end
    local function empty(b)
        b.q = {}
        if b.lst then ready_remove(b.lst, b) end
    end
    local function nlive(l)
        local n = 0
        for _, b in ipairs(l.members) do if #b.handles > 0 then n = n + 1 end end
        return n
    end

    -- the expected outcome of a put into b: nil (ok), false (full) or an error kind
    local function put_outcome(b, m, clear)
        if b.closed then return "object_closed" end
        if b.aborted then return "operation_aborted" end
        if b.fixed then
            local f = framesize(m.seq, m.len)
            if f > FIXED then return "message_size" end
            if not clear and used(b) + f > FIXED then return false end
        end
        return nil
    end
    local function apply_put(b, m, clear)
        if clear then b.q = {} end
        b.q[#b.q + 1] = m
        if b.lst and not ready_has(b.lst, b) then b.lst.ready[#b.lst.ready + 1] = b end
    end

    local function do_put(h, b, clear, via_writer)
        local m = newmsg()
        local exp = put_outcome(b, m, clear)
        local f
        if via_writer then
            W:clear()
            W:add(m.seq)
            W:add(payload(m))
            f = clear and W.setmsg or W.addmsg
            if type(exp) == "string" and exp ~= "message_size" then call(exp, f, W, h.ud) return end
            if exp == "message_size" then
                -- the writer itself is growable: the buffer raises message_size
                call("message_size", f, W, h.ud)
                return
            end
            local r = call(nil, f, W, h.ud)
            if r ~= (exp == nil) then fail("writer put returned %s", tostring(r)) end
        else
            f = clear and h.ud.setmsg or h.ud.addmsg
            if type(exp) == "string" then call(exp, f, h.ud, m.seq, payload(m)) return end
            local r = call(nil, f, h.ud, m.seq, payload(m))
            if r ~= (exp == nil) then fail("put returned %s, expected %s", tostring(r), tostring(exp == nil)) end
        end
        if exp == nil then apply_put(b, m, clear) end
    end

    local function take_from(b)
        local m = table.remove(b.q, 1)
        if #b.q == 0 and b.lst then ready_remove(b.lst, b) end
        return m
    end

    local function do_take(h, b, how)
        local exp
        if b.closed then exp = "object_closed" elseif b.aborted then exp = "operation_aborted" end
        if how == 0 then            -- buffer:nextmsg
            local r
            if exp then call(exp, h.ud.nextmsg, h.ud, 0) return end
            if h.nb then r = table.pack(call(nil, h.ud.nextmsg, h.ud))
            else r = table.pack(call(nil, h.ud.nextmsg, h.ud, 0)) end
            if #b.q == 0 then
                if r.n ~= 0 then fail("nextmsg on an empty buffer returned %d values", r.n) end
                return
            end
            if r.n ~= 2 then fail("nextmsg returned %d values", r.n) end
            checkmsg(take_from(b), r[1], r[2], "buffer:nextmsg")
        else                        -- reader:nextmsg
            if exp then call(exp, R.nextmsg, R, h.ud, 0) return end
            local ok = call(nil, R.nextmsg, R, h.ud, 0)
            if ok ~= (#b.q > 0) then fail("reader:nextmsg returned %s", tostring(ok)) end
            if ok then
                local s = R:next()
                local str = R:next()
                if select("#", R:next()) ~= 0 then fail("reader has extra elements") end
                checkmsg(take_from(b), s, str, "reader:nextmsg")
            end
        end
    end

    local function do_ltake(lh, l, via_reader)
        local exp
        if l.closed then exp = "object_closed" elseif l.aborted then exp = "operation_aborted"
        elseif #l.ready == 0 and nlive(l) == 0 then exp = "no_buffers" end
        local f, args = lh.ud.nextmsg, {lh.ud, 0}
        if via_reader then f, args = R.nextmsg, {R, lh.ud, 0} end
        if exp then call(exp, f, table.unpack(args)) return end
        local r = table.pack(call(nil, f, table.unpack(args)))
        if #l.ready == 0 then
            if via_reader then
                if r[1] ~= false then fail("reader:nextmsg(listener) returned %s", tostring(r[1])) end
            elseif r.n ~= 0 then fail("listener:nextmsg returned %d values when empty", r.n) end
            return
        end
        local b = l.ready[1]
        local m = table.remove(b.q, 1)
        table.remove(l.ready, 1)
        if #b.q > 0 then l.ready[#l.ready + 1] = b       -- round robin: to the back
        elseif b.orphan then detach(b) end
        if via_reader then
            if r[1] ~= true then fail("reader:nextmsg(listener) returned %s", tostring(r[1])) end
            local s = R:next()
            local str = R:next()
            checkmsg(m, s, str, "reader:nextmsg(listener)")
        else
            if r.n ~= 2 then fail("listener:nextmsg returned %d values", r.n) end
            checkmsg(m, r[1], r[2], "listener:nextmsg")
        end
    end

    local function newbuffer(l, lh)
        local name
        local sel = byte()
        if sel % 3 == 0 then name = ({"a", "b", "a\0b"})[sel // 3 % 3 + 1] end
        local fixed = sel % 5 == 1
        local args = {}
        if name then args[#args + 1] = name end
        if fixed then args[#args + 1] = FIXED; args[#args + 1] = 0
        elseif sel % 5 == 2 then args[#args + 1] = 0; args[#args + 1] = 0.5
        elseif sel % 5 == 3 then args[#args + 1] = 1; args[#args + 1] = 1 end
        local exp
        if gabort then exp = "operation_aborted"
        elseif l and l.closed then exp = "object_closed"
        elseif l and l.aborted then exp = "operation_aborted" end
        local ud
        if l then
            if exp then call(exp, lh.ud.newbuffer, lh.ud, table.unpack(args)) return end
            ud = call(nil, lh.ud.newbuffer, lh.ud, table.unpack(args))
        else
            if exp then call(exp, mtmsg.newbuffer, table.unpack(args)) return end
            ud = call(nil, mtmsg.newbuffer, table.unpack(args))
        end
        local b = {handles = {{ud = ud, nb = false}}, id = ud:id(), name = name, fixed = fixed,
                   q = {}, closed = false, aborted = false, lst = l}
        if l then l.members[#l.members + 1] = b end
        buffers[#buffers + 1] = b
    end

    local function drop_buffer_handle(b)
        local i = byte() % #b.handles + 1
        table.remove(b.handles, i)
        collectgarbage()
        collectgarbage()
        if #b.handles > 0 then return end
        local l = b.lst
        if not l then b.gone = true; b.q = {}; return end
        if #b.q > 0 and #l.handles > 0 and not l.closed then
            b.orphan = true                     -- still delivered by the listener
        else
            detach(b)
        end
    end

    local function drop_listener_handle(l)
        local i = byte() % #l.handles + 1
        table.remove(l.handles, i)
        collectgarbage()
        collectgarbage()
        if #l.handles > 0 then return end
        -- orphans can no longer be read: freed
        for j = #l.members, 1, -1 do
            local b = l.members[j]
            if b.orphan then detach(b) end
        end
    end

    local function lookup_buffer()
        local sel = byte()
        if sel % 4 == 0 then                        -- by name
            local name = ({"a", "b", "a\0b", "zz"})[sel // 4 % 4 + 1]
            local found = {}
            for _, b in ipairs(buffers) do
                if b.name == name and #b.handles > 0 then found[#found + 1] = b end
            end
            local exp = gabort and "operation_aborted" or (#found == 0 and "unknown_object")
                        or (#found > 1 and "ambiguous_name") or nil
            if exp then call(exp, mtmsg.buffer, name) return end
            local ud = call(nil, mtmsg.buffer, name)
            if ud:id() ~= found[1].id then fail("buffer(name) found the wrong buffer") end
            found[1].handles[#found[1].handles + 1] = {ud = ud, nb = false}
            return
        end
        local b = pick(buffers)
        if not b then return end
        local exp = gabort and "operation_aborted" or (#b.handles == 0 and "unknown_object") or nil
        if exp then call(exp, mtmsg.buffer, b.id) return end
        local ud = call(nil, mtmsg.buffer, b.id)
        if ud:id() ~= b.id then fail("buffer(id) found the wrong buffer") end
        b.handles[#b.handles + 1] = {ud = ud, nb = false}
    end

    local function verify_counts()
        for _, b in ipairs(buffers) do
            if #b.handles > 0 then
                local h = b.handles[1]
                local n = h.ud:msgcnt()
                if n ~= #b.q then fail("buffer %d: msgcnt %d, model %d", b.id, n, #b.q) end
                if h.ud:isabort() ~= b.aborted then fail("buffer %d: isabort differs", b.id) end
            end
        end
        for _, l in ipairs(listeners) do
            if #l.handles > 0 and l.handles[1].ud:isabort() ~= l.aborted then
                fail("listener %d: isabort differs", l.id)
            end
        end
    end

    local function setabort_all(flag)
        gabort = flag
        for _, l in ipairs(listeners) do
            if #l.handles > 0 then
                l.aborted = flag
                for _, b in ipairs(l.members) do b.aborted = flag end
            end
        end
        for _, b in ipairs(buffers) do if #b.handles > 0 then b.aborted = flag end end
    end

    local NOPS = 24
    local trace = os.getenv("FUZZ_OPS_TRACE")
    while pos <= #data do
        step = step + 1
        local op = byte() % NOPS
        if trace then io.stderr:write(("step %d: op %d\n"):format(step, op)) end
        local lb, ll = live(buffers), live(listeners)
        if op == 0 or op == 1 then
            newbuffer(nil)
        elseif op == 2 then
            if gabort then call("operation_aborted", mtmsg.newlistener)
            else
                local ud = call(nil, mtmsg.newlistener, (byte() % 2 == 0) and "L" or nil)
                listeners[#listeners + 1] = {handles = {{ud = ud, nb = false}}, id = ud:id(),
                                             members = {}, ready = {}, closed = false, aborted = false}
            end
        elseif op == 3 or op == 4 then
            local l = pick(ll)
            if l then newbuffer(l, pick(l.handles)) end
        elseif op == 5 then
            lookup_buffer()
        elseif op == 6 then
            local b = pick(lb)
            if b then drop_buffer_handle(b) end
        elseif op == 7 or op == 8 or op == 9 then
            local b = pick(lb)
            if b then do_put(pick(b.handles), b, false, false) end
        elseif op == 10 then
            local b = pick(lb)
            if b then do_put(pick(b.handles), b, byte() % 2 == 0, true) end
        elseif op == 11 then
            local b = pick(lb)
            if b then do_put(pick(b.handles), b, true, false) end
        elseif op == 12 or op == 13 then
            local b = pick(lb)
            if b then do_take(pick(b.handles), b, 0) end
        elseif op == 14 then
            local b = pick(lb)
            if b then do_take(pick(b.handles), b, 1) end
        elseif op == 15 then
            local b = pick(lb)
            if b then
                local h = pick(b.handles)
                if byte() % 4 == 0 then          -- close
                    call(nil, h.ud.close, h.ud)
                    b.closed = true
                    empty(b)
                elseif b.closed then call("object_closed", h.ud.clear, h.ud)
                else
                    if call(nil, h.ud.clear, h.ud) ~= true then fail("clear returned false") end
                    empty(b)
                end
            end
        elseif op == 16 then
            local b = pick(lb)
            if b then
                local h = pick(b.handles)
                local flag = byte() % 3 ~= 0
                call(nil, h.ud.abort, h.ud, flag)
                b.aborted = flag
            end
        elseif op == 17 then
            local b = pick(lb)
            if b then
                local h = pick(b.handles)
                local flag = byte() % 2 == 0
                local exp = b.closed and "object_closed" or (b.aborted and "operation_aborted") or nil
                call(exp, h.ud.nonblock, h.ud, flag)
                if not exp then h.nb = flag end
                if h.ud:isnonblock() ~= h.nb then fail("isnonblock differs") end
            end
        elseif op == 18 or op == 19 then
            local l = pick(ll)
            if l then do_ltake(pick(l.handles), l, op == 19) end
        elseif op == 20 then
            local l = pick(ll)
            if l then
                local sel = byte() % 6
                -- (no handle in a local for the drop: it would keep the handle alive)
                local h = sel ~= 5 and pick(l.handles) or nil
                if sel == 0 then                     -- close
                    call(nil, h.ud.close, h.ud)
                    l.closed = true
                    for j = #l.members, 1, -1 do
                        local b = l.members[j]
                        b.closed = true
                        b.q = {}
                        if b.orphan then detach(b) end
                    end
                    l.ready = {}
                elseif sel == 1 then                 -- clear
                    if l.closed then call("object_closed", h.ud.clear, h.ud)
                    else
                        call(nil, h.ud.clear, h.ud)
                        for j = #l.members, 1, -1 do
                            local b = l.members[j]
                            b.q = {}
                            if b.orphan then detach(b) end
                        end
                        l.ready = {}
                    end
                elseif sel == 2 or sel == 3 then     -- abort / unabort
                    local flag = sel == 2
                    call(nil, h.ud.abort, h.ud, flag)
                    l.aborted = flag
                    for _, b in ipairs(l.members) do b.aborted = flag end
                elseif sel == 4 then                 -- another handle by id
                    if gabort then call("operation_aborted", mtmsg.listener, l.id)
                    else
                        local ud = call(nil, mtmsg.listener, l.id)
                        l.handles[#l.handles + 1] = {ud = ud, nb = false}
                    end
                else                                 -- drop a handle
                    drop_listener_handle(l)
                end
            end
        elseif op == 21 then
            local flag = byte() % 3 ~= 0
            call(nil, mtmsg.abort, flag)
            setabort_all(flag)
            if mtmsg.isabort() ~= flag then fail("isabort differs") end
        elseif op == 22 then
            local l = pick(listeners)
            if l and #l.handles == 0 then
                call(gabort and "operation_aborted" or "unknown_object", mtmsg.listener, l.id)
            end
        else
            verify_counts()
        end
    end
    verify_counts()
    -- the end: everything must be collectable without errors
    call(nil, mtmsg.abort, false)
    buffers, listeners = nil, nil
    collectgarbage()
    collectgarbage()
    return step
end
