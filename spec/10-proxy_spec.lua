-- Faults injected by a TCP proxy (spec/fixtures/proxy.py) between wsbeat and
-- the python echo server: blackhole, freeze, delay, reset, refuse.
--
-- Timing bounds follow what the protocol guarantees, with slack for a noisy
-- 2-core machine: a dead peer is detected no later than interval + timeout
-- after the last byte arrived, and never before the probe that went
-- unanswered has had `timeout` seconds.
local H = require "helper"
local core = require "wsbeat.core"

local SLACK = 0.5 * H.SLOW -- upper bounds only; lower bounds come from the protocol

-- WSBEAT_SPEC_TIMES=1 prints the measured figures to stderr.
local function note(fmt, ...)
	if os.getenv("WSBEAT_SPEC_TIMES") then
		io.stderr:write(("\n  [proxy] " .. fmt):format(...))
	end
end

-- Drive the loop for `seconds`, calling each() after every step.
local function run_for(seconds, each)
	local stop = core.now() + seconds
	H.run_until(function()
		if each then each() end
		return core.now() >= stop
	end, seconds + 5, "run_for")
end

local function count(list, value)
	local n = 0
	for _, v in ipairs(list) do
		if v == value then n = n + 1 end
	end
	return n
end

local function last(rec)
	return rec.states[#rec.states], rec.infos[#rec.infos]
end

-- Time of the last pong, as seen by the client: every pong of a heartbeat
-- probe sets a new stats().rtt.
local function pong_watch(ws)
	local w = { rtt = ws:stats().rtt, at = core.now(), n = 0 }
	function w.check()
		if ws:state() ~= "open" then return end
		local rtt = ws:stats().rtt
		if rtt ~= w.rtt then
			w.rtt, w.at, w.n = rtt, core.now(), w.n + 1
		end
	end
	return w
end

-- Wait (driving the loop) until the client has seen a pong: a fixed run of
-- a few probe cycles is no proof that one came back in time.
local function wait_pong(pong)
	H.run_until(function()
		pong.check()
		return pong.n >= 1
	end, 3, "a pong before the fault")
end

-- Stop the proxy first (it resets every connection), then end the client.
local function cleanup(px, ws)
	if px then px:stop() end
	if ws and ws:state() ~= "closed" then
		ws:close()
		H.wait_state(ws, "closed", 10)
	end
end

describe("proxy faults", function()
	local srv
	setup(function() srv = H.server {} end)
	teardown(function() H.stop(srv) end)

	it("forwards big messages and keeps order under delay", function()
		local px = H.proxy(srv.port)
		local ws, rec
		finally(function() cleanup(px, ws) end)
		local size = 5 * 1024 * 1024
		ws, rec = H.client(px:url("/big/" .. size), { reconnect = false })
		H.run_until(function() return #rec.messages >= 1 end, 10, "big message")
		assert.equal(size, #rec.messages[1].data)
		assert.is_true(rec.messages[1].data == H.big_pattern(0, size))
		px:mode("delay 30")
		for i = 1, 20 do assert.is_true(ws:send("m" .. i)) end
		H.run_until(function() return #rec.messages >= 21 end, 5, "20 echoes")
		for i = 1, 20 do assert.equal("m" .. i, rec.messages[i + 1].data) end
		assert.same({ "open" }, rec.states)
	end)

	it("blackhole: detected as heartbeat_timeout within interval + timeout #slow", function()
		local iv, to = 0.1, 0.2
		local px = H.proxy(srv.port)
		local ws, rec
		finally(function() cleanup(px, ws) end)
		local t_closed
		ws, rec = H.client(px:url(), {
			heartbeat = { interval = iv, timeout = to },
			reconnect = false,
			on_state = function(_, st) if st == "closed" then t_closed = core.now() end end,
		})
		H.wait_state(ws, "open")
		local pong = pong_watch(ws)
		run_for(0.35, pong.check) -- a few probe cycles
		wait_pong(pong)
		local t_before = core.now()
		px:mode("blackhole")
		local t_after = core.now()
		H.run_until(function()
			pong.check()
			return ws:state() == "closed"
		end, iv + to + SLACK + 2, "closed")
		local st, info = last(rec)
		assert.same({ "open", "closed" }, rec.states)
		assert.equal("closed", st)
		assert.equal("heartbeat_timeout", info.cause)
		assert.equal(1006, info.code)
		assert.equal("open", info.previous)
		local since_mode = t_closed - t_after
		local since_pong = t_closed - pong.at
		note("blackhole: closed %.3f s after the mode change, %.3f s after the last pong (rtt %.4f)",
			since_mode, since_pong, pong.rtt)
		-- at most interval + timeout after the last byte (<= the mode change)
		assert.is_true(since_mode <= iv + to + SLACK, "detected late: " .. since_mode)
		-- the unanswered probe had its full timeout (a probe in flight at the
		-- switch may have left up to one round trip before it)
		assert.is_true(t_closed - t_before >= to - 0.02, "detected early: " .. (t_closed - t_before))
		-- and the silence lasted interval + timeout since the last pong
		assert.is_true(since_pong >= iv + to - 0.02, "detected early after the last pong: " .. since_pong)
	end)

	-- Regression: when timeout > interval, a pong must re-arm the timer for
	-- the earlier probe time (it once stayed armed at the old dead-line, and
	-- detection took up to 2 * timeout after the last pong).
	it("blackhole: detected interval + timeout after the last pong even when timeout > interval #slow", function()
		local iv, to = 0.05, 0.5
		local px = H.proxy(srv.port)
		local ws, rec
		finally(function() cleanup(px, ws) end)
		local t_closed
		ws, rec = H.client(px:url(), {
			heartbeat = { interval = iv, timeout = to },
			reconnect = false,
			on_state = function(_, st) if st == "closed" then t_closed = core.now() end end,
		})
		H.wait_state(ws, "open")
		local pong = pong_watch(ws)
		run_for(0.6, pong.check)
		wait_pong(pong)
		px:mode("blackhole")
		H.run_until(function()
			pong.check()
			return ws:state() == "closed"
		end, 5, "closed")
		assert.equal("heartbeat_timeout", rec.infos[#rec.infos].cause)
		local since_pong = t_closed - pong.at
		assert.is_true(since_pong >= iv + to - 0.02, "early: " .. since_pong)
		assert.is_true(since_pong <= iv + to + 0.25 * H.SLOW, "late: " .. since_pong)
	end)

	it("freeze: detected as heartbeat_timeout within interval + timeout #slow", function()
		local iv, to = 0.1, 0.2
		local px = H.proxy(srv.port)
		local ws, rec
		finally(function() cleanup(px, ws) end)
		local t_closed
		ws, rec = H.client(px:url(), {
			heartbeat = { interval = iv, timeout = to },
			reconnect = false,
			on_state = function(_, st) if st == "closed" then t_closed = core.now() end end,
		})
		H.wait_state(ws, "open")
		local pong = pong_watch(ws)
		run_for(0.35, pong.check)
		wait_pong(pong)
		local t_before = core.now()
		px:mode("freeze")
		local t_after = core.now()
		H.run_until(function()
			pong.check()
			return ws:state() == "closed"
		end, iv + to + SLACK + 2, "closed")
		local _, info = last(rec)
		assert.same({ "open", "closed" }, rec.states)
		assert.equal("heartbeat_timeout", info.cause)
		local since_mode = t_closed - t_after
		note("freeze: closed %.3f s after the mode change, %.3f s after the last pong",
			since_mode, t_closed - pong.at)
		assert.is_true(since_mode <= iv + to + SLACK, "detected late: " .. since_mode)
		assert.is_true(t_closed - t_before >= to - 0.02, "detected early: " .. (t_closed - t_before))
		assert.is_true(t_closed - pong.at >= iv + to - 0.02)
	end)

	it("freeze: reconnects end at connect_timeout, and open again after forward #slow", function()
		local px = H.proxy(srv.port)
		local ws, rec
		finally(function() cleanup(px, ws) end)
		ws, rec = H.client(px:url(), {
			heartbeat = { interval = 0.1, timeout = 0.2 },
			connect_timeout = 0.3,
			reconnect = { delay = 0.05, jitter = 0 },
		})
		H.wait_state(ws, "open")
		local accepted = #px:events("accept")
		local t0 = core.now()
		px:mode("freeze")
		local function failures(cause)
			local n = 0
			for i, st in ipairs(rec.states) do
				if st == "reconnecting" and rec.infos[i].cause == cause then n = n + 1 end
			end
			return n
		end
		H.run_until(function() return failures("connect_timeout") >= 2 end, 6, "two connect timeouts")
		note("freeze: two connect_timeout failures %.3f s after the freeze", core.now() - t0)
		assert.equal(1, count(rec.states, "open")) -- never opened while frozen
		assert.equal("reconnecting", rec.states[2])
		assert.equal("heartbeat_timeout", rec.infos[2].cause)
		-- every later failure is a connect timeout: TCP was accepted, the
		-- upgrade never answered
		for i = 3, #rec.states do
			if rec.states[i] == "reconnecting" then
				assert.equal("connect_timeout", rec.infos[i].cause)
				assert.is_true(rec.infos[i].attempt >= 2)
			end
		end
		assert.is_true(#px:events("accept") >= accepted + 2, "attempts reached the proxy")
		local t1 = core.now()
		px:mode("forward")
		H.run_until(function() return count(rec.states, "open") == 2 end, 5, "open again")
		note("freeze: open again %.3f s after forward", core.now() - t1)
		assert.equal("open", ws:state())
		assert.equal("connecting", rec.states[#rec.states - 1])
		assert.equal(1, ws:stats().reconnects)
	end)

	it("delay: 100 ms each way is no dead peer, and rtt shows the round trip #slow", function()
		local px = H.proxy(srv.port)
		local ws, rec
		finally(function() cleanup(px, ws) end)
		ws, rec = H.client(px:url(), {
			heartbeat = { interval = 0.1, timeout = 0.5 },
			reconnect = { delay = 0.05, jitter = 0 },
		})
		H.wait_state(ws, "open")
		px:mode("delay 100")
		local pong = pong_watch(ws)
		local rtts = {}
		local function collect()
			local n = pong.n
			pong.check()
			if pong.n ~= n then rtts[#rtts + 1] = pong.rtt end
		end
		run_for(2, collect)
		-- (two pongs are due well within 2 s; wait for them rather than assume them)
		H.run_until(function()
			collect()
			return #rtts >= 2
		end, 5, "two pongs")
		assert.same({ "open" }, rec.states) -- no "reconnecting", nothing at all
		assert.equal("open", ws:state())
		local parts = {}
		for i, r in ipairs(rtts) do parts[i] = ("%.3f"):format(r) end
		note("delay 100 ms: %d pongs in 2 s, rtt %s", #rtts, table.concat(parts, " "))
		-- the first pong may answer a probe sent before the delay began
		assert.is_true(#rtts >= 2, "pongs seen: " .. #rtts)
		local rtt = ws:stats().rtt
		assert.is_true(rtt >= 0.2, "rtt " .. rtt)
		assert.is_true(rtt < 0.2 + SLACK, "rtt " .. rtt)
		-- messages still flow, 200 ms later
		local t0 = core.now()
		ws:send("slow")
		H.run_until(function() return #rec.messages >= 1 end, 3, "echo")
		assert.equal("slow", rec.messages[1].data)
		assert.is_true(core.now() - t0 >= 0.2)
	end)

	it("reset: connection_lost (1006), then open again", function()
		local px = H.proxy(srv.port)
		local ws, rec
		finally(function() cleanup(px, ws) end)
		local connects = #srv:events("connect")
		ws, rec = H.client(px:url(), { reconnect = { delay = 0.05, jitter = 0 } })
		H.wait_state(ws, "open")
		px:mode("reset")
		H.run_until(function() return count(rec.states, "open") == 2 end, 5, "open again")
		assert.same({ "open", "reconnecting", "connecting", "open" }, rec.states)
		assert.equal("connection_lost", rec.infos[2].cause)
		assert.equal(1006, rec.infos[2].code)
		assert.equal(1, rec.infos[2].attempt)
		assert.equal(0.05, rec.infos[2].delay)
		assert.equal(1, ws:stats().reconnects)
		H.run_until(function() return #srv:events("connect") >= connects + 2 end, 3, "server saw both")
		-- the new connection works
		ws:send("again")
		H.run_until(function() return #rec.messages >= 1 end, 3, "echo")
		assert.equal("again", rec.messages[1].data)
	end)

	it("refuse: max_attempts = 3 ends closed with gave_up", function()
		local px = H.proxy(srv.port)
		local ws, rec
		finally(function() cleanup(px, ws) end)
		px:mode("refuse")
		ws, rec = H.client(px:url(), { reconnect = { delay = 0.05, jitter = 0, max_attempts = 3 } })
		H.wait_state(ws, "closed", 10)
		assert.same({ "reconnecting", "connecting", "reconnecting", "connecting", "closed" }, rec.states)
		local st, info = last(rec)
		assert.equal("closed", st)
		assert.equal("gave_up", info.cause)
		assert.equal(3, info.attempt)
		note("refuse: per-attempt cause %s (%s)", rec.infos[1].cause, rec.infos[1].reason)
		assert.equal(3, #px:events("refused"))
	end)

	describe("heartbeat mode message", function()
		local hb = { mode = "message", message = "hb", interval = 0.05, timeout = 0.1 }

		it("detects a blackhole", function()
			local px = H.proxy(srv.port)
			local ws, rec
			finally(function() cleanup(px, ws) end)
			local t_closed
			ws, rec = H.client(px:url(), {
				heartbeat = hb,
				reconnect = false,
				on_state = function(_, st) if st == "closed" then t_closed = core.now() end end,
			})
			H.wait_state(ws, "open")
			H.run_until(function() return #rec.messages >= 2 end, 3, "two echoed heartbeats")
			local t_before = core.now()
			px:mode("blackhole")
			local t_after = core.now()
			H.wait_state(ws, "closed", 3)
			assert.same({ "open", "closed" }, rec.states)
			assert.equal("heartbeat_timeout", rec.infos[2].cause)
			note("message mode blackhole: closed %.3f s after the mode change", t_closed - t_after)
			assert.is_true(t_closed - t_after <= hb.interval + hb.timeout + SLACK)
			assert.is_true(t_closed - t_before >= hb.timeout - 0.02)
		end)

		it("is kept alive by the echo of its heartbeat message #slow", function()
			local px = H.proxy(srv.port)
			local ws, rec
			finally(function() cleanup(px, ws) end)
			ws, rec = H.client(px:url(), { heartbeat = hb, reconnect = { delay = 0.05, jitter = 0 } })
			H.wait_state(ws, "open")
			run_for(1)
			-- (about 20 probes are due in 1 s; wait for 3 echoes rather than assume them)
			H.run_until(function() return #rec.messages >= 3 end, 5, "three echoed heartbeats")
			assert.same({ "open" }, rec.states)
			assert.equal("open", ws:state())
			-- the probes were real messages, echoed back to on_message
			note("message mode forward: %d echoed heartbeats in 1 s", #rec.messages)
			assert.is_true(#rec.messages >= 3, "echoes: " .. #rec.messages)
			for _, m in ipairs(rec.messages) do
				assert.equal("hb", m.data)
				assert.equal("text", m.kind)
			end
			local seen = 0
			for _, ev in ipairs(srv:events("message")) do
				if ev.data == "hb" then seen = seen + 1 end
			end
			assert.is_true(seen >= #rec.messages)
		end)
	end)
end)
