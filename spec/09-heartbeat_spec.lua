local H = require "helper"
local wsbeat = require "wsbeat"
local core = require "wsbeat.core"

-- Bounds: a dead peer must be found no later than interval + timeout after
-- the last byte arrived; SLACK covers a noisy 2-core machine.
local SLACK = 0.6 * H.SLOW

local function last(rec) return rec.infos[#rec.infos], rec.states[#rec.states] end

describe("heartbeat", function()
	local srv
	setup(function() srv = H.server {} end)
	teardown(function() H.stop(srv) end)

	it("ping mode: finds a server that never answers pings, in bound", function()
		local hb = { interval = 0.1, timeout = 0.2 }
		local opened
		local ws, rec = H.client(srv:url("/silent"), {
			heartbeat = hb, reconnect = false,
			on_state = function(_, st) if st == "open" then opened = core.now() end end,
		})
		H.wait_state(ws, "closed", 5)
		local dt = core.now() - opened
		local info = last(rec)
		assert.equal("heartbeat_timeout", info.cause)
		assert.equal("open", info.previous)
		assert.is_true(dt >= hb.interval + hb.timeout - 0.01, "too early: " .. dt)
		assert.is_true(dt <= hb.interval + hb.timeout + SLACK, "too late: " .. dt)
		-- the probe really was a PING with our payload
		assert.is_truthy(srv:wait_event("ping", function(e) return e.len == 17 end))
	end)

	it("ping mode: an answering server stays up and the RTT is measured #slow", function()
		local ws, rec = H.client(srv:url("/echo?alive"), { heartbeat = { interval = 0.05, timeout = 0.2 } })
		H.wait_state(ws, "open")
		local t0 = core.now()
		H.run_until(function() return core.now() - t0 > 1.0 end, 3)
		assert.same({ "open" }, rec.states)
		local rtt = ws:stats().rtt
		assert.is_number(rtt)
		assert.is_true(rtt > 0 and rtt < 0.2, "rtt " .. rtt)
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("message mode keeps an echoing server alive and delivers its replies #slow", function()
		local ws, rec = H.client(srv:url("/echo?msgmode"), {
			heartbeat = { interval = 0.05, timeout = 0.15, mode = "message", message = "hb" },
		})
		H.wait_state(ws, "open")
		local t0 = core.now()
		H.run_until(function() return core.now() - t0 > 1.0 end, 3)
		assert.same({ "open" }, rec.states)
		assert.is_true(#rec.messages >= 3, "echoed probes: " .. #rec.messages)
		for _, m in ipairs(rec.messages) do assert.same({ data = "hb", kind = "text" }, m) end
		assert.is_truthy(srv:wait_event("message", function(e) return e.data == "hb" end))
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("message mode finds a server that stays silent", function()
		local ws, rec = H.client(srv:url("/silent"), {
			heartbeat = { interval = 0.05, timeout = 0.15, mode = "message", message = "hb" },
			reconnect = false,
		})
		H.wait_state(ws, "closed", 5)
		assert.equal("heartbeat_timeout", last(rec).cause)
	end)

	it("does not mistake a stalled host for a dead peer (stall = 10 x interval) #slow", function()
		local hb = { interval = 0.05, timeout = 0.05 }
		local ws, rec = H.client(srv:url("/echo?stall"), { heartbeat = hb })
		H.wait_state(ws, "open")
		for round = 1, 5 do
			-- wait until a probe is on the wire, then stop calling step()
			local n = #srv:events("ping")
			H.run_until(function() return #srv:events("ping") > n end, 3, "probe " .. round)
			H.sleep(10 * hb.interval)
			for _ = 1, 3 do wsbeat.step() end
		end
		local t0 = core.now()
		H.run_until(function() return core.now() - t0 > 0.3 end, 2)
		assert.same({ "open" }, rec.states)
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("a full max_queue (flow control) never causes a heartbeat timeout #slow", function()
		local ws, rec = H.client(srv:url("/send/20/100000"), {
			heartbeat = { interval = 0.05, timeout = 0.1 }, max_queue = 1, on_message = false,
		})
		H.wait_state(ws, "open")
		local t0 = core.now()
		H.run_until(function() return core.now() - t0 > 1.0 end, 3) -- nobody calls receive()
		assert.same({ "open" }, rec.states)
		for k = 0, 19 do
			local data = assert(ws:receive(5))
			assert.equal(100000, #data)
			assert.is_true(data == H.big_pattern(k, 100000))
		end
		assert.same({ "open" }, rec.states)
		ws:close()
		H.wait_state(ws, "closed")
	end)
end)

describe("faults", function()
	it("SIGSTOP: detected in bound, retries time out while frozen, recovers after SIGCONT #slow", function()
		local srv = H.server {}
		finally(function() srv:stop() end) -- (stop() continues a stopped peer)
		local hb = { interval = 0.1, timeout = 0.2 }
		local ws, rec = H.client(srv:url(), {
			heartbeat = hb, connect_timeout = 0.4,
			reconnect = { delay = 0.05, max_delay = 0.2, jitter = 0 },
		})
		H.wait_state(ws, "open")
		srv:signal("STOP")
		local t0 = core.now()
		H.run_until(function() return rec.states[#rec.states] == "reconnecting" end, 5, "detection")
		local dt = core.now() - t0
		assert.equal("heartbeat_timeout", rec.infos[#rec.infos].cause)
		assert.is_true(dt <= hb.interval + hb.timeout + SLACK, "detected after " .. dt)
		H.run_until(function()
			for _, i in ipairs(rec.infos) do if i.cause == "connect_timeout" then return true end end
		end, 5, "a retry that times out")
		srv:signal("CONT")
		local n = #rec.states
		H.run_until(function() return ws:state() == "open" and #rec.states > n end, 5, "open again")
		assert.equal(1, ws:stats().reconnects)
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("a killed server restarted on the same port gets the buffered messages once, in order", function()
		local srv, srv2
		finally(function() H.stop(srv2, srv) end)
		srv = H.server {}
		local port = srv.port
		local ws, rec = H.client(srv:url("/echo?restart"), {
			heartbeat = { interval = 0.1, timeout = 0.2 },
			reconnect = { delay = 0.05, max_delay = 0.2, jitter = 0 },
		})
		H.wait_state(ws, "open")
		assert.is_true(ws:send("before"))
		srv:wait_event("message", function(e) return e.data == "before" end)
		srv:signal("KILL")
		H.run_until(function() return ws:state() == "reconnecting" end, 5, "loss noticed")
		for i = 1, 5 do assert.is_true(ws:send("m" .. i)) end
		assert.equal(10, ws:stats().buffered)
		srv2 = H.server { port = port }
		H.run_until(function() return #srv2:events("message") >= 5 end, 10, "buffered messages")
		H.run_until(function() return #rec.messages >= 6 end, 5, "echoes")
		local got = {}
		for _, e in ipairs(srv2:events("message")) do got[#got + 1] = e.data end
		assert.same({ "m1", "m2", "m3", "m4", "m5" }, got)
		assert.equal(0, ws:stats().buffered)
		ws:close()
		H.wait_state(ws, "closed")
		-- the server has read all this connection sent once it logs its close
		srv2:wait_event("close")
		assert.equal(5, #srv2:events("message")) -- and nothing twice
	end)

	it("backoff: delay * factor^(n-1) capped at max_delay, with jitter 0", function()
		local port, hold = H.refusing_port()
		finally(function() hold:close() end)
		local ws, rec = H.client(("ws://127.0.0.1:%d/"):format(port), {
			reconnect = { delay = 0.01, factor = 3, max_delay = 0.1, jitter = 0, max_attempts = 6 },
		})
		H.wait_state(ws, "closed", 5)
		local delays = {}
		for i, st in ipairs(rec.states) do
			if st == "reconnecting" then delays[#delays + 1] = rec.infos[i].delay end
		end
		assert.same({ 0.01, 0.03, 0.09, 0.1, 0.1 }, delays)
		assert.equal("gave_up", rec.infos[#rec.infos].cause)
	end)

	it("jitter spreads the delay within [d * (1 - jitter), d]", function()
		local port, hold = H.refusing_port()
		finally(function() hold:close() end)
		local delays = {}
		for _ = 1, 20 do
			local ws, rec = H.client(("ws://127.0.0.1:%d/"):format(port), {
				reconnect = { delay = 1, jitter = 0.5 },
			})
			H.run_until(function() return #rec.states > 0 end, 5)
			delays[#delays + 1] = rec.infos[1].delay
			ws:close()
		end
		table.sort(delays)
		assert.is_true(delays[1] >= 0.5 and delays[#delays] <= 1, table.concat(delays, " "))
		assert.is_true(delays[#delays] - delays[1] > 0.05, "no spread: " .. table.concat(delays, " "))
	end)

	it("min_uptime: a connection that dies at once does not reset the attempt count", function()
		local srv = H.server {}
		finally(function() srv:stop() end)
		local ws, rec = H.client(srv:url("/abort"), {
			reconnect = { delay = 0.01, factor = 2, jitter = 0, min_uptime = 5, max_attempts = 4 },
		})
		H.wait_state(ws, "closed", 5)
		local attempts = {}
		for i, st in ipairs(rec.states) do
			if st == "reconnecting" then attempts[#attempts + 1] = rec.infos[i].attempt end
		end
		assert.same({ 1, 2, 3 }, attempts)
		assert.equal("gave_up", rec.infos[#rec.infos].cause)
	end)
end)

describe("probes", function()
	it("never wait behind a big message being sent (PING between its fragments) #slow", function()
		local srv = H.server {}
		finally(function() srv:stop() end)
		-- 64 fragments are enough to prove the point under valgrind
		local size = (os.getenv("WSBEAT_UNDER_VALGRIND") and 4 or 16) * 1024 * 1024
		local ws = H.client(srv:url("/echo?bigsend"), {
			heartbeat = { interval = 0.02, timeout = 5 },
			on_state = function(ws, st) if st == "open" then ws:send(("\0"):rep(size), "binary") end end,
		})
		local big = srv:wait_event("message", function(e) return e.len == size end, 60) -- slow under valgrind
		local lines = {}
		for _, e in ipairs(srv:events()) do lines[#lines + 1] = e end
		local first_ping, msg_at
		for i, e in ipairs(lines) do
			if e.event == "ping" and not first_ping then first_ping = i end
			if e == big or (e.event == "message" and e.len == size) then msg_at = msg_at or i end
		end
		assert.is_truthy(first_ping, "no probe at all")
		assert.is_true(first_ping < msg_at, "the probe waited for the whole message")
		ws:close()
		H.wait_state(ws, "closed", 10)
	end)
end)
