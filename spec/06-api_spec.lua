local H = require "helper"
local wsbeat = require "wsbeat"
local core = require "wsbeat.core"

describe("bad arguments raise and name the argument", function()
	local cases = {
		{ function() wsbeat.connect(42) end, "bad argument #1 to 'connect' (expected a URL string, got number)" },
		{ function() wsbeat.connect("http://x/") end, "bad argument #1 to 'connect' (unsupported scheme 'http', expected ws or wss)" },
		{ function() wsbeat.connect("ws://") end, "bad argument #1 to 'connect' (URL has no host)" },
		{ function() wsbeat.connect("ws://h:0/") end, "bad argument #1 to 'connect' (port out of range, expected 1-65535)" },
		{ function() wsbeat.connect("ws://h:70000/") end, "bad argument #1 to 'connect' (port out of range, expected 1-65535)" },
		{ function() wsbeat.connect("ws://h:x/") end, "bad argument #1 to 'connect' (invalid port in URL)" },
		{ function() wsbeat.connect("ws://[::1/") end, "bad argument #1 to 'connect' (unterminated IPv6 literal in URL)" },
		{ function() wsbeat.connect("ws://[zz]/") end, "bad argument #1 to 'connect' (invalid IPv6 address 'zz')" },
		{ function() wsbeat.connect("ws://u:p@h/") end, "bad argument #1 to 'connect' (user information in URLs is not supported)" },
		{ function() wsbeat.connect("ws://h/#frag") end, "bad argument #1 to 'connect' (URL fragments are not allowed)" },
		{ function() wsbeat.connect("ws://h/a b") end, "bad argument #1 to 'connect' (URL path contains a space or control character)" },
		{ function() wsbeat.connect("ws://h\0/") end, "bad argument #1 to 'connect' (URL contains a NUL byte)" },
		{ function() wsbeat.connect("ws://h/", 5) end, "bad argument #2 to 'connect' (expected a table of options, got number)" },
		{ function() wsbeat.connect("ws://h/", { bogus = 1 }) end, "bad argument #2 to 'connect' (unknown option 'bogus')" },
		{ function() wsbeat.connect("ws://h/", { connect_timeout = "1" }) end, "bad argument #2 to 'connect' (option 'connect_timeout': expected number, got string)" },
		{ function() wsbeat.connect("ws://h/", { connect_timeout = 0 }) end, "bad argument #2 to 'connect' (option 'connect_timeout': expected a finite number > 0)" },
		{ function() wsbeat.connect("ws://h/", { close_timeout = 0 / 0 }) end, "bad argument #2 to 'connect' (option 'close_timeout': expected a finite number > 0)" },
		{ function() wsbeat.connect("ws://h/", { max_queue = 1.5 }) end, "bad argument #2 to 'connect' (option 'max_queue': expected a positive integer)" },
		{ function() wsbeat.connect("ws://h/", { send_buffer = math.huge }) end, "bad argument #2 to 'connect' (option 'send_buffer': expected a positive integer)" },
		{ function() wsbeat.connect("ws://h/", { on_message = "f" }) end, "bad argument #2 to 'connect' (option 'on_message': expected function, got string)" },
		{ function() wsbeat.connect("ws://h/", { protocols = {} }) end, "bad argument #2 to 'connect' (option 'protocols': expected a non-empty list of names)" },
		{ function() wsbeat.connect("ws://h/", { protocols = { "a b" } }) end, "bad argument #2 to 'connect' (option 'protocols': entry 1 is not a valid subprotocol name)" },
		{ function() wsbeat.connect("ws://h/", { headers = { ["Bad Name"] = "x" } }) end, "bad argument #2 to 'connect' (option 'headers': invalid header name 'Bad Name')" },
		{ function() wsbeat.connect("ws://h/", { headers = { X = "a\r\nb" } }) end, "bad argument #2 to 'connect' (option 'headers': invalid value for header 'X')" },
		{ function() wsbeat.connect("ws://h/", { headers = { Host = "x" } }) end, "bad argument #2 to 'connect' (option 'headers': header 'Host' is set by wsbeat itself)" },
		{ function() wsbeat.connect("ws://h/", { tls = { verify = "no" } }) end, "bad argument #2 to 'connect' (option 'tls': field 'verify': expected boolean, got string)" },
		{ function() wsbeat.connect("ws://h/", { tls = { cafile = "x" } }) end, "bad argument #2 to 'connect' (option 'tls': unknown field 'cafile')" },
		{ function() wsbeat.connect("ws://h/", { heartbeat = { interval = -1 } }) end, "bad argument #2 to 'connect' (option 'heartbeat.interval': expected a finite number > 0)" },
		{ function() wsbeat.connect("ws://h/", { heartbeat = { mode = "pong" } }) end, "bad argument #2 to 'connect' (option 'heartbeat.mode': expected 'ping' or 'message')" },
		{ function() wsbeat.connect("ws://h/", { reconnect = { jitter = 2 } }) end, "bad argument #2 to 'connect' (option 'reconnect.jitter': expected a number in [0, 1])" },
		{ function() wsbeat.connect("ws://h/", { reconnect = { tries = 2 } }) end, "bad argument #2 to 'connect' (option 'reconnect': unknown field 'tries')" },
		{ function() wsbeat.connect("ws://h/", { compression = 1 }) end, "bad argument #2 to 'connect' (option 'compression': expected boolean, got number)" },
		{ function() wsbeat.run("x") end, "bad argument #1 to 'run' (expected a number >= 0)" },
		{ function() wsbeat.spawn(1) end, "bad argument #1 to 'spawn' (expected a function)" },
	}
	for i, case in ipairs(cases) do
		it(("case %d: %s"):format(i, case[2]), function()
			assert.has_error(case[1], case[2])
		end)
	end

	it("reports the caller's line", function()
		local ok, err = pcall(function() wsbeat.connect("http://x/") end)
		assert.is_false(ok)
		assert.matches("06%-api_spec.lua:%d+: bad argument #1", err)
	end)

	it("checks close codes and reasons", function()
		local ws = wsbeat.connect("ws://127.0.0.1:9/", { reconnect = false })
		assert.has_error(function() ws:close(1005) end, "bad argument #1 to 'close' (close code must be 1000, 1001 or 3000-4999)")
		assert.has_error(function() ws:close(1000, ("x"):rep(124)) end, "bad argument #2 to 'close' (close reason longer than 123 bytes)")
		ws:close()
		H.wait_state(ws, "closed")
	end)
end)

describe("callbacks", function()
	local srv
	setup(function() srv = H.server {} end)
	teardown(function() H.stop(srv) end)

	it("re-raise an on_message error from step() and the loop goes on", function()
		local n = 0
		local ws = wsbeat.connect(srv:url(), {
			on_state = function(ws, st) if st == "open" then ws:send("a") ws:send("b") end end,
			on_message = function(_, data)
				n = n + 1
				if data == "a" then error("boom in handler") end
			end,
		})
		local raised
		local deadline = core.now() + 5
		while n < 2 and core.now() < deadline do
			core.wait(0.01)
			local ok, err = pcall(wsbeat.step)
			if not ok then raised = err end
		end
		assert.equal(2, n)
		assert.matches("boom in handler", raised)
		assert.matches("stack traceback", raised)
		assert.equal("open", ws:state())
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("what a callback sent before it raised leaves at once, without another step()", function()
		local ws = wsbeat.connect(srv:url("/send/1/4?then=log"), {
			on_message = function(w)
				w:send("reply before the error")
				error("boom after the send")
			end,
		})
		local raised
		local until_t = core.now() + 5 * H.SLOW
		while not raised and core.now() < until_t do
			core.wait(0.01)
			local ok, err = pcall(wsbeat.step)
			if not ok then raised = err end
		end
		assert.matches("boom after the send", raised)
		-- no step() from here: the reply must already be on its way
		local deadline, seen = core.now() + 5 * H.SLOW, false
		while not seen and core.now() < deadline do
			for _, e in ipairs(srv:events("message")) do
				if e.data == "reply before the error" then seen = true end
			end
			if not seen then H.sleep(0.02) end
		end
		assert.is_true(seen)
		assert.equal("open", ws:state())
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("hand errors to on_error when given", function()
		local errors = {}
		local ws = wsbeat.connect(srv:url(), {
			on_state = function(ws, st)
				if st == "open" then ws:send("x") error("state boom") end
			end,
			on_message = function() error("message boom") end,
			on_error = function(ws, err) errors[#errors + 1] = err end,
		})
		H.run_until(function() return #errors == 2 end, 5, "two errors")
		assert.matches("state boom", errors[1])
		assert.matches("message boom", errors[2])
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("may close, send and connect new clients from inside callbacks", function()
		local second, second_rec
		local ws, rec = H.client(srv:url(), {
			on_state = function(ws, st) if st == "open" then ws:send("go") end end,
			on_message = function(ws, data)
				ws:send("after")
				ws:close(4010, "from callback")
				second, second_rec = H.client(srv:url("/echo?second"))
			end,
		})
		H.wait_state(ws, "closed")
		assert.equal(4010, srv:wait_event("close", function(e) return e.code == 4010 end).code)
		-- "after" was queued before close() and is flushed before the close frame
		assert.is_truthy(srv:wait_event("message", function(e) return e.data == "after" end))
		H.wait_state(second, "open")
		second:close()
		H.wait_state(second, "closed")
		assert.same({ "open", "closing", "closed" }, second_rec.states)
		assert.same({ "open", "closing", "closed" }, rec.states)
	end)

	it("refuse a nested step() or blocking receive()", function()
		local errs = {}
		local ws = wsbeat.connect(srv:url(), {
			on_state = function(ws, st)
				if st == "open" then
					errs[1] = select(2, pcall(wsbeat.step))
					errs[2] = select(2, pcall(wsbeat.run, 1))
				end
			end,
		})
		H.wait_state(ws, "open")
		assert.matches("called from inside a callback", errs[1])
		assert.matches("called from inside a callback", errs[2])
		ws:close()
		H.wait_state(ws, "closed")
	end)
end)

describe("lifetime", function()
	local srv
	setup(function() srv = H.server {} end)
	teardown(function() H.stop(srv) end)

	it("keeps a live client alive without references and collects it once closed", function()
		local seen = setmetatable({}, { __mode = "k" })
		local opened = false
		do
			local ws = wsbeat.connect(srv:url("/echo?gc"), {
				on_state = function(ws, st) if st == "open" then opened = true end end,
			})
			seen[ws] = true
		end
		collectgarbage() collectgarbage()
		assert.is_not_nil(next(seen), "live client was collected")
		H.run_until(function() return opened end, 5, "open")
		local ws = next(seen)
		ws:close()
		H.wait_state(ws, "closed")
		ws = nil -- luacheck: ignore 311 (drop the last reference)
		collectgarbage() collectgarbage()
		assert.is_nil(next(seen), "closed client was not collected")
	end)

	-- (5.4 syntax: compiled from a string, so the file loads everywhere;
	-- not defined where the Lua has no <close>)
	local it_close = H.HAS_CLOSE and it or function() end
	it_close("closes a <close> variable at scope end", function()
		local ref = assert(load([[
			local wsbeat, H, url = ...
			local ref
			do
				local ws <close> = wsbeat.connect(url)
				H.wait_state(ws, "open")
				ref = ws
			end
			return ref
		]]))(wsbeat, H, srv:url("/echo?tbc"))
		H.wait_state(ref, "closed")
		assert.equal(1000, srv:wait_event("close", function(e) return e.id == srv:wait_event("connect", function(c) return c.path == "/echo?tbc" end).id end).code)
	end)
end)

describe("error positions", function()
	it("point at the caller's line for option errors at any depth", function()
		for _, opts in ipairs { { bogus = 1 }, { connect_timeout = "x" }, { heartbeat = { interval = -1 } },
			{ tls = { verify = 1 } }, { protocols = { "a b" } }, 7 } do
			local ok, err = pcall(function() wsbeat.connect("ws://127.0.0.1:9/", opts) end)
			assert.is_false(ok)
			assert.matches("^spec/06%-api_spec.lua:%d+: bad argument #2 to 'connect'", err)
		end
	end)
end)
