local H = require "helper"
local wsbeat = require "wsbeat"
local core = require "wsbeat.core"

-- #root: a mount namespace (unshare -m) and a DNS server on port 53
describe("name resolution #root", function()
	it("never blocks step(): a 1 s DNS answer while the loop keeps turning", function()
		local srv, dns
		finally(function() H.stop(dns, srv) end)
		srv = H.server {}
		local dir = H.tmpdir()
		local f = assert(io.open(dir .. "/resolv.conf", "w"))
		f:write("nameserver 127.0.0.2\noptions timeout:5 attempts:1\n")
		f:close()
		dns = H.start_peer({ H.PYTHON, H.ROOT .. "/spec/fixtures/slowdns.py", "--addr", "127.0.0.2", "--port", "53",
			"--delay", "1.0" }, { name = "dns", ready = "READY", stderr = false })
		local q = H.quote
		local inner = ("mount --bind %s /etc/resolv.conf && cd %s && "
			.. "LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;' lua5.4 spec/fixtures/dns_probe.lua %s")
			:format(q(dir .. "/resolv.conf"), q(H.ROOT), q(("ws://slow.wsbeat.test:%d/echo"):format(srv.port)))
		local out = H.sh(("unshare -m sh -c %s 2>&1"):format(q(inner)))
		local elapsed, maxstep, steps, state = out:match("elapsed=([%d.]+) maxstep=([%d.]+) steps=(%d+) state=(%a+)")
		assert.is_truthy(elapsed, "probe output: " .. out)
		assert.equal("open", state)
		assert.is_true(tonumber(elapsed) >= 0.9, "the answer came too soon: " .. out)
		assert.is_true(tonumber(maxstep) < 0.2, "a step blocked: " .. out)
		assert.is_true(tonumber(steps) > 20, "the loop did not turn: " .. out)
		local ev = srv:wait_event("connect")
		assert.equal("slow.wsbeat.test:" .. srv.port, ev.headers.host)
	end)
end)

describe("the pollable contract", function()
	it("a loop that only wakes through fd() and timeout() does not stall (plain poll via cqueues)", function()
		local cqueues = require "cqueues"
		local certs = H.certs()
		local srv = H.server { tls = true }
		finally(function() srv:stop() end)
		local got, N = 0, 300
		local ws = wsbeat.connect(srv:url(), {
			tls = { ca_file = certs .. "/ca.pem" },
			on_state = function(ws, st)
				if st == "open" then for i = 1, N do ws:send(("m%03d"):format(i) .. ("x"):rep(3000)) end end
			end,
			on_message = function() got = got + 1 end,
		})
		local fdobj = { pollfd = wsbeat.fd(), events = "r" }
		local cq = cqueues.new()
		local t0 = core.now()
		cq:wrap(function()
			while got < N and core.now() - t0 < 20 do
				cqueues.poll(fdobj, wsbeat.timeout())
				wsbeat.step()
			end
			ws:close()
			while ws:state() ~= "closed" and core.now() - t0 < 25 do
				cqueues.poll(fdobj, wsbeat.timeout())
				wsbeat.step()
			end
		end)
		assert(cq:loop())
		assert.equal(N, got)
		assert.equal("closed", ws:state())
	end)

	it("receive() inside cqueues coroutines, several clients, ws as a pollable", function()
		local cqueues = require "cqueues"
		local srv = H.server {}
		finally(function() srv:stop() end)
		local cq = cqueues.new()
		local results = {}
		for _, spec in ipairs { { "a", "/send/3/4" }, { "b", "/send/2/9" } } do
			cq:wrap(function()
				local ws = wsbeat.connect(srv:url(spec[2]))
				local n = tonumber(spec[2]:match("/send/(%d+)"))
				for _ = 1, n do
					local data = assert(ws:receive(5))
					results[#results + 1] = spec[1] .. #data
				end
				assert(cqueues.poll(ws, 0.01)) -- ws is a pollable object itself
				ws:close()
				local _, why = ws:receive(5)
				results[#results + 1] = spec[1] .. why
			end)
		end
		assert(cq:loop(10))
		table.sort(results)
		assert.same({ "a4", "a4", "a4", "aclosed", "b9", "b9", "bclosed" }, results)
	end)

	it("receive() from a callback under cqueues raises at once rather than yield mid-delivery #slow", function()
		local cqueues = require "cqueues"
		local srv = H.server {}
		finally(function() srv:stop() end)
		local cq = cqueues.new()
		local err, polls = nil, 0
		cq:wrap(function()
			local b = wsbeat.connect(srv:url("/echo"))
			local a = wsbeat.connect(srv:url("/send/1/4"), {
				on_message = function()
					local ok, e = pcall(b.receive, b, 1)
					err = ok and "returned" or e
				end,
			})
			local fdobj = { pollfd = function() return wsbeat.fd() end, events = function() return "r" end }
			while not err and polls < 500 do
				polls = polls + 1
				cqueues.poll(fdobj, math.min(wsbeat.timeout() or 0.05, 0.05))
				wsbeat.step()
			end
			a:close()
			b:close()
		end)
		assert(cq:loop(10))
		assert.matches("receive: would block inside a callback", tostring(err))
	end)

	it("the fd turns readable after a send made outside step() (no stale sleep)", function()
		local cqueues = require "cqueues"
		local srv = H.server {}
		finally(function() srv:stop() end)
		local ws, rec = H.client(srv:url("/echo?kick"))
		H.wait_state(ws, "open")
		local fdobj = { pollfd = wsbeat.fd(), events = "r" }
		for i = 1, 6 do
			-- settle: nothing due now
			H.run_until(function() return wsbeat.timeout() > 0.5 end, 2, "idle engine")
			if i % 2 == 1 then
				-- small: written at once from send(); the echo wakes the fd
				ws:send("k" .. i) -- outside any step()
			else
				-- big: queued for lws's WRITEABLE, which needs a loop turn
				ws:send("k" .. i .. ("x"):rep(100000))
				assert.equal(0, wsbeat.timeout())
			end
			local cq = cqueues.new()
			local woke
			cq:wrap(function()
				local t0 = core.now()
				cqueues.poll(fdobj, 2 * H.SLOW)
				woke = core.now() - t0
			end)
			assert(cq:loop())
			-- (the echo's round trip: an upper bound, so it scales like the others)
			assert.is_true(woke < 0.5 * H.SLOW, "the fd stayed quiet for " .. woke .. " s")
			H.run_until(function() return #rec.messages == i end, 5, "echo " .. i)
		end
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("timeout() counts down between steps (no stale clock)", function()
		local ws = wsbeat.connect("ws://127.0.0.1:1/", { reconnect = { delay = 5, jitter = 0, max_attempts = 2 } })
		H.run_until(function() return ws:state() == "reconnecting" end, 5)
		-- libwebsockets' housekeeping timer may be due first; let it pass so
		-- that the countdown read below cannot bottom out at 0
		H.run_until(function() return wsbeat.timeout() > 0.5 end, 2, "nothing due for 0.5 s")
		local t1 = wsbeat.timeout()
		H.sleep(0.3)
		local t2 = wsbeat.timeout()
		assert.is_true(t1 - t2 >= 0.25, ("timeout went from %.3f to %.3f over 0.3 s"):format(t1, t2))
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("core.wait(limit) returns within its limit after the host was away (stale loop clock)", function()
		-- After I/O, libwebsockets leaves an idle handle that the next wait
		-- runs first; a limit timer measured from the clock of the last turn
		-- expired in that first pass and the wait then slept until the next
		-- timer (seconds away).  Nothing else is due here: no heartbeat, no
		-- reconnect, an open idle link.
		local srv = H.server {}
		finally(function() srv:stop() end)
		local ws, rec = H.client(srv:url(), { heartbeat = false })
		H.wait_state(ws, "open")
		for round = 1, 5 do
			assert.is_true(ws:send("tick " .. round))
			H.run_until(function() return #rec.messages == round end, 5, "echo " .. round)
			H.sleep(0.05) -- the host does other work; the loop's clock goes stale
			local t0 = core.now()
			core.wait(0.01)
			core.wait(0.01)
			local took = core.now() - t0
			assert.is_true(took < 0.5, ("two waits of 0.01 s took %.3f s (round %d)"):format(took, round))
		end
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("fd() is stable; timeout() does not ask for busy polling when idle #slow", function()
		local cqueues = require "cqueues"
		assert.equal(wsbeat.fd(), wsbeat.fd())
		local fd = wsbeat.fd()
		if math.type then assert.equal("integer", math.type(fd)) else assert.equal(0, fd % 1) end
		assert.is_true(fd >= 0)
		local ws = wsbeat.connect("ws://127.0.0.1:1/", { reconnect = false })
		assert.equal(0, wsbeat.timeout()) -- work to do now
		H.wait_state(ws, "closed")
		-- An idle engine may still have libwebsockets' 30 s housekeeping timer
		-- due at any moment (the engine is as old as this process), so a single
		-- reading of timeout() proves nothing: follow fd() and timeout() for a
		-- while and count how often the loop is woken.
		local fdobj = { pollfd = wsbeat.fd(), events = "r" }
		local cq = cqueues.new()
		local wakeups, t0 = 0, core.now()
		cq:wrap(function()
			while core.now() - t0 < 1.5 do
				local t = wsbeat.timeout()
				assert.is_true(t == nil or t >= 0, "timeout " .. tostring(t))
				cqueues.poll(fdobj, math.max(0, math.min(t or 1.5, 1.5 - (core.now() - t0))))
				wsbeat.step()
				wakeups = wakeups + 1
			end
		end)
		assert(cq:loop())
		-- the housekeeping timer may fire once and the fd may turn readable for
		-- it; anything beyond a handful of wakeups is busy polling
		assert.is_true(wakeups <= 6, "idle loop woke " .. wakeups .. " times in 1.5 s")
	end)
end)
