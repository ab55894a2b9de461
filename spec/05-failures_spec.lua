local H = require "helper"
local core = require "wsbeat.core"

describe("connection failures", function()
	local srv
	setup(function() srv = H.server {} end)
	teardown(function() H.stop(srv) end)

	it("reports a refused port as cause refused", function()
		local port, hold = H.refusing_port()
		finally(function() hold:close() end)
		local ws, rec = H.client(("ws://127.0.0.1:%d/"):format(port), { reconnect = false })
		H.wait_state(ws, "closed")
		assert.same({ "closed" }, rec.states)
		assert.equal("refused", rec.infos[1].cause)
		assert.matches("connection refused", rec.infos[1].reason)
		assert.equal("connecting", rec.infos[1].previous)
		assert.equal(0, rec.infos[1].unsent)
	end)

	-- A TCP connect() to a multicast address fails at once (ENETUNREACH,
	-- no packet leaves the host).  lws 4.1 then left its uv_poll_t in the
	-- engine's loop, which uv_loop_close() refused at exit: valgrind saw the
	-- handle and the loop's own memory lost (make check-memory catches it).
	it("an attempt whose connect() fails at once ends at once, with nothing left in the loop", function()
		local t0 = core.now()
		local ws, rec = H.client("ws://224.0.0.1:80/",
			{ connect_timeout = 5, reconnect = { delay = 0.01, max_delay = 0.01, jitter = 0, max_attempts = 20 } })
		H.wait_state(ws, "closed", 10)
		assert.equal("gave_up", rec.infos[#rec.infos].cause)
		assert.equal(20, rec.infos[#rec.infos].attempt)
		-- (lws reports nothing for a connect() that failed inside its call,
		-- and its reason used to read "closed during the opening handshake")
		assert.equal("network", rec.infos[1].cause)
		assert.equal("connection failed: a multicast address takes no TCP connection (224.0.0.1 port 80)",
			rec.infos[1].reason)
		-- every attempt failed at once, none waited for connect_timeout
		assert.is_true(core.now() - t0 < 5, tostring(core.now() - t0))
	end)

	it("gives up after max_attempts with cause gave_up", function()
		local port, hold = H.refusing_port()
		finally(function() hold:close() end)
		local t0 = core.now()
		local ws, rec = H.client(("ws://127.0.0.1:%d/"):format(port),
			{ reconnect = { delay = 0.05, factor = 2, jitter = 0, max_attempts = 3 } })
		H.wait_state(ws, "closed")
		assert.same({ "reconnecting", "connecting", "reconnecting", "connecting", "closed" }, rec.states)
		assert.equal(1, rec.infos[1].attempt)
		assert.equal(0.05, rec.infos[1].delay)
		assert.equal(2, rec.infos[3].attempt)
		assert.equal(0.1, rec.infos[3].delay)
		assert.equal("gave_up", rec.infos[5].cause)
		assert.equal(3, rec.infos[5].attempt)
		assert.is_true(core.now() - t0 >= 0.15)
	end)

	it("ends a hanging upgrade at connect_timeout", function()
		local t0 = core.now()
		local ws, rec = H.client(srv:url("/hang"), { connect_timeout = 0.3, reconnect = false })
		H.wait_state(ws, "closed")
		local dt = core.now() - t0
		assert.equal("connect_timeout", rec.infos[1].cause)
		assert.is_true(dt >= 0.29 and dt < 2 * H.SLOW, "took " .. dt)
	end)

	it("retries HTTP 503 and honours Retry-After", function()
		local ws, rec = H.client(srv:url("/status/503?retry_after=2"),
			{ reconnect = { delay = 0.01, jitter = 0 } })
		H.run_until(function() return #rec.states >= 1 end, 5, "first failure")
		assert.equal("reconnecting", rec.states[1])
		assert.equal("http_status", rec.infos[1].cause)
		assert.equal(503, rec.infos[1].status)
		assert.equal(2, rec.infos[1].delay)
		ws:close()
		H.wait_state(ws, "closed")
		assert.equal("closed_by_user", rec.infos[2].cause)
		assert.equal("reconnecting", rec.infos[2].previous)
	end)

	it("reports an unresolvable name as cause dns", function()
		local ws, rec = H.client("ws://no-such-host.invalid/", { reconnect = false })
		H.wait_state(ws, "closed", 15)
		assert.equal("dns", rec.infos[1].cause)
		assert.matches("cannot resolve 'no%-such%-host.invalid'", rec.infos[1].reason)
	end)

	it("closes at once while connecting and counts unsent messages", function()
		local ws, rec = H.client(srv:url("/hang"))
		ws:send("a")
		ws:send("b")
		ws:close()
		assert.equal("connecting", ws:state()) -- told only from step()
		H.wait_state(ws, "closed")
		assert.same({ "closed" }, rec.states)
		assert.equal(2, rec.infos[1].unsent)
	end)

	it("reconnects after an abort and delivers buffered messages once", function()
		local ws, rec = H.client(srv:url("/abort"), { reconnect = { delay = 0.05, jitter = 0, max_attempts = 2 } })
		H.wait_state(ws, "closed", 5)
		assert.same({ "open", "reconnecting", "connecting", "open", "closed" }, rec.states)
		assert.equal("connection_lost", rec.infos[2].cause)
		assert.equal(1006, rec.infos[2].code)
		assert.equal("gave_up", rec.infos[5].cause)
		assert.equal(1, ws:stats().reconnects)
	end)
end)

describe("reconnect attempts", function()
	it("call the headers function before every attempt", function()
		local srv = H.server {}
		finally(function() srv:stop() end)
		local calls = 0
		local ws, rec = H.client(srv:url("/abort"), {
			reconnect = { delay = 0.02, jitter = 0, max_attempts = 3 },
			headers = function()
				calls = calls + 1
				return { Authorization = "token-" .. calls }
			end,
		})
		H.wait_state(ws, "closed")
		assert.equal(3, calls)
		local seen = {}
		for _, ev in ipairs(srv:events("connect")) do seen[#seen + 1] = ev.headers.authorization end
		assert.same({ "token-1", "token-2", "token-3" }, seen)
		assert.equal("gave_up", rec.infos[#rec.infos].cause)
	end)
end)

describe("reconnect.retry", function()
	local srv
	setup(function() srv = H.server {} end)
	teardown(function() H.stop(srv) end)

	it("overrides the policy: retry a 403 it would stop on", function()
		local asked = {}
		local ws, rec = H.client(srv:url("/status/403"), {
			reconnect = { delay = 0.01, jitter = 0, max_attempts = 3,
				retry = function(ws, info)
					asked[#asked + 1] = info
					return true
				end },
		})
		H.wait_state(ws, "closed")
		assert.equal(3, #asked) -- asked every time; the third hits max_attempts
		assert.equal("http_status", asked[1].cause)
		assert.equal(403, asked[1].status)
		assert.is_false(asked[1].retry) -- the default verdict
		assert.equal(1, asked[1].attempt)
		assert.same({ "reconnecting", "connecting", "reconnecting", "connecting", "closed" }, rec.states)
		assert.equal("gave_up", rec.infos[5].cause)
	end)

	it("overrides the policy: stop on a 503 it would retry", function()
		local ws, rec = H.client(srv:url("/status/503"), {
			reconnect = { delay = 0.01, retry = function() return false end },
		})
		H.wait_state(ws, "closed")
		assert.same({ "closed" }, rec.states)
		assert.equal(503, rec.infos[1].status)
		assert.equal("http_status", rec.infos[1].cause)
	end)

	it("falls back to the default when retry raises, and reports the error", function()
		local errs = {}
		local ws, rec = H.client(srv:url("/status/403"), {
			reconnect = { retry = function() error("retry boom") end },
			on_error = function(_, e) errs[#errs + 1] = e end,
		})
		H.wait_state(ws, "closed")
		assert.same({ "closed" }, rec.states)
		assert.matches("retry boom", errs[1])
	end)
end)

describe("server close codes and the default retry policy", function()
	local srv
	setup(function() srv = H.server {} end)
	teardown(function() H.stop(srv) end)

	local retried = { 1000, 1001, 1011, 4000, 4999 }
	local stopped = { 1002, 1003, 1007, 1008, 1009, 1010, 3000 }
	for _, code in ipairs(retried) do
		it(("retries after a server close with %d"):format(code), function()
			local ws, rec = H.client(srv:url("/close/" .. code), { reconnect = { delay = 5 } })
			H.run_until(function() return #rec.states >= 2 end, 5)
			assert.same({ "open", "reconnecting" }, rec.states)
			assert.equal("closed_by_peer", rec.infos[2].cause)
			assert.equal(code, rec.infos[2].code)
			ws:close()
			H.wait_state(ws, "closed")
		end)
	end
	for _, code in ipairs(stopped) do
		it(("stops after a server close with %d"):format(code), function()
			local ws, rec = H.client(srv:url("/close/" .. code), { reconnect = { delay = 0.01 } })
			H.wait_state(ws, "closed")
			assert.same({ "open", "closed" }, rec.states)
			assert.equal("closed_by_peer", rec.infos[2].cause)
			assert.equal(code, rec.infos[2].code)
		end)
	end
	-- 1012-1014 (registered after RFC 6455) are valid codes: wsbeat reads
	-- the close itself and sees them as sent (libwebsockets 4.1.6's client
	-- turned them into 1002), and the default policy retries them (a
	-- restart, an overload, a gateway)
	local certs = H.certs()
	local tsrv
	setup(function() tsrv = H.server { tls = true } end)
	teardown(function() H.stop(tsrv) end)
	for _, case in ipairs { { 1012, "ws" }, { 1013, "ws" }, { 1014, "ws" }, { 1012, "wss" } } do
		local code, scheme = case[1], case[2]
		it(("retries after a server close with %d over %s"):format(code, scheme), function()
			local s = scheme == "wss" and tsrv or srv
			local ws, rec = H.client(s:url("/close/" .. code .. "?reason=restart"), {
				reconnect = { delay = 5 }, tls = scheme == "wss" and { ca_file = certs .. "/ca.pem" } or nil,
			})
			H.run_until(function() return #rec.states >= 2 end, 5)
			assert.same({ "open", "reconnecting" }, rec.states)
			assert.equal("closed_by_peer", rec.infos[2].cause)
			assert.equal(code, rec.infos[2].code)
			assert.matches("restart", rec.infos[2].reason, 1, true)
			ws:close()
			H.wait_state(ws, "closed")
			-- the server saw its own code echoed
			assert.equal(code, s:wait_event("close", function(e) return e.code == code end).code)
		end)
	end

	it("retries an abort without a close frame (1006)", function()
		local ws, rec = H.client(srv:url("/abort"), { reconnect = { delay = 5 } })
		H.run_until(function() return #rec.states >= 2 end, 5)
		assert.equal("connection_lost", rec.infos[2].cause)
		assert.equal(1006, rec.infos[2].code)
		ws:close()
	end)
end)

describe("a headers function that fails on a reconnect", function()
	it("goes to on_error and the attempt goes ahead without extra headers", function()
		local srv = H.server {}
		finally(function() srv:stop() end)
		local calls, errs = 0, {}
		local ws, rec = H.client(srv:url("/abort"), {
			reconnect = { delay = 0.02, jitter = 0, max_attempts = 2 },
			headers = function()
				calls = calls + 1
				if calls == 2 then error("token service down") end
				return { Authorization = "t" .. calls }
			end,
			on_error = function(_, e) errs[#errs + 1] = e end,
		})
		H.wait_state(ws, "closed")
		assert.equal(2, calls)
		assert.matches("token service down", errs[1])
		local seen = {}
		for _, ev in ipairs(srv:events("connect")) do seen[#seen + 1] = ev.headers.authorization or "none" end
		assert.same({ "t1", "none" }, seen)
		assert.equal("gave_up", rec.infos[#rec.infos].cause)
	end)
end)
