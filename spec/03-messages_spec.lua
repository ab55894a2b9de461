local H = require "helper"
local wsbeat = require "wsbeat"
local core = require "wsbeat.core"
local json = require "dkjson"

describe("sending and receiving", function()
	local srv
	setup(function() srv = H.server {} end)
	teardown(function() H.stop(srv) end)

	it("buffers sends while connecting; sends from on_state(open) go first", function()
		local path = "/echo?order"
		local ws, rec = H.client(srv:url(path), {
			on_state = function(ws, st)
				if st == "open" then
					assert.is_true(ws:send("login"))
					assert.is_true(ws:send("subscribe"))
				end
			end,
		})
		assert.is_true(ws:send("b1"))
		assert.is_true(ws:send("b2"))
		assert.equal(4, #"b1b2")
		assert.equal(4, ws:stats().buffered)
		H.run_until(function() return #rec.messages == 4 end, 5, "4 echoes")
		local got = {}
		for i, m in ipairs(rec.messages) do got[i] = m.data end
		assert.same({ "login", "subscribe", "b1", "b2" }, got)
		local st = ws:stats()
		assert.equal(4, st.messages_sent)
		assert.equal(4, st.messages_received)
		assert.equal(0, st.buffered)
		assert.is_number(st.connected_at)
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("validates text as UTF-8 and refuses sends after close", function()
		local ws = H.client(srv:url())
		local ok, err = ws:send("\255\254")
		assert.is_nil(ok)
		assert.equal("invalid UTF-8", err)
		ok, err = ws:send("\237\160\128") -- a surrogate
		assert.is_nil(ok)
		assert.equal("invalid UTF-8", err)
		assert.is_true(ws:send("\255\254", "binary"))
		assert.has_error(function() ws:send("x", "blob") end)
		-- the same verdicts as Lua's strict utf8.len, long ASCII runs included
		local pad = ("a"):rep(37)
		for _, t in ipairs {
			"", "\0", "h\195\169", "\226\130\172", "\240\159\152\128", "\244\143\191\191",
			"\192\128", "\193\191", "\224\159\191", "\240\143\191\191", "\244\144\128\128",
			"\245\128\128\128", "\128", "\195", "\226\130", "\240\159\152", "\237\159\191", "\238\128\128",
		} do
			for _, m in ipairs { t, pad .. t, t .. pad, pad .. t .. pad } do
				local want = H.utf8_valid(m)
				local got = ws:send(m) == true
				assert.equal(want, got, ("%q"):format(m))
			end
		end
		H.wait_state(ws, "open")
		ws:close()
		ok, err = ws:send("late")
		assert.is_nil(ok)
		assert.equal("closed", err)
		H.wait_state(ws, "closed")
		ok, err = ws:send("later")
		assert.is_nil(ok)
		assert.equal("closed", err)
	end)

	it("bounds the send buffer while connecting and reports unsent messages", function()
		local ws, rec = H.client(srv:url("/hang"), { send_buffer = 10, reconnect = false })
		assert.is_true(ws:send("12345"))
		assert.is_true(ws:send("67890"))
		local ok, err = ws:send("x")
		assert.is_nil(ok)
		assert.equal("send buffer full", err)
		ws:close()
		H.wait_state(ws, "closed")
		assert.equal(2, rec.infos[#rec.infos].unsent)
		assert.equal("closed_by_user", rec.infos[#rec.infos].cause)
	end)

	it("receive() on the main thread: messages, timeout, then closed", function()
		local ws = wsbeat.connect(srv:url("/send/3/10"))
		for k = 0, 2 do
			local data, kind = ws:receive(5)
			assert.equal("binary", kind)
			assert.equal(H.pattern(k, 10), data)
		end
		local t0 = core.now()
		local data, err = ws:receive(0.2)
		local dt = core.now() - t0
		assert.is_nil(data)
		assert.equal("timeout", err)
		assert.is_true(dt >= 0.19 and dt < 1.5 * H.SLOW, "timeout took " .. dt)
		ws:send("tail")
		ws:close()
		-- what arrived before the close is still delivered, then "closed"
		local got = {}
		for d in ws:messages() do got[#got + 1] = d end
		assert.is_true(#got <= 1)
		assert.same({ nil, "closed" }, { ws:receive() })
	end)

	it("receive() inside wsbeat.spawn coroutines does not block other clients", function()
		local results = {}
		local function worker(name, path, n)
			local ws = wsbeat.connect(srv:url(path))
			for _ = 1, n do
				local data = assert(ws:receive(5))
				results[#results + 1] = name .. ":" .. #data
			end
			ws:close()
			local _, why = ws:receive() -- yields: index results only afterwards
			results[#results + 1] = name .. ":" .. why
		end
		wsbeat.spawn(worker, "a", "/send/2/5", 2)
		wsbeat.spawn(worker, "b", "/send/3/7", 3)
		assert.is_true(wsbeat.run(10))
		table.sort(results)
		assert.same({ "a:5", "a:5", "a:closed", "b:7", "b:7", "b:7", "b:closed" }, results)
	end)

	it("a spawned coroutine may spawn others that wait (no broken walk of the waiting set)", function()
		local a = wsbeat.connect(srv:url("/send/3/4"), { reconnect = false })
		local b = wsbeat.connect(srv:url("/silent"), { reconnect = false })
		local woken, others, parents = 0, {}, 0
		-- three one-shot parents: each takes a message, spawns 40 children
		-- that wait on b, and ends, so the waiting set grows while it is
		-- walked and loses the walker's key in the same pass
		for _ = 1, 3 do
			wsbeat.spawn(function()
				assert(a:receive(5 * H.SLOW))
				parents = parents + 1
				for k = 1, 40 do
					wsbeat.spawn(function()
						local _, why = b:receive(0.05 + k / 1000)
						if why == "timeout" then woken = woken + 1 else others[#others + 1] = why end
					end)
				end
			end)
		end
		-- (b stays open, so every child ends by its own timeout)
		H.run_until(function() return woken + #others == 120 end, 5, "120 wake-ups")
		a:close()
		b:close()
		assert.is_true(wsbeat.run(5 * H.SLOW))
		assert.equal(3, parents)
		assert.same({}, others)
		assert.equal(120, woken)
	end)

	it("errors of coroutines woken in the same turn are all raised, none lost", function()
		local ws = wsbeat.connect(srv:url("/close/1000"), { reconnect = false })
		local woken = {}
		for _, name in ipairs { "first", "second" } do
			wsbeat.spawn(function()
				local _, why = ws:receive(5)
				woken[#woken + 1] = why
				error("boom in the " .. name)
			end)
		end
		local ok, err = pcall(wsbeat.run, 10 * H.SLOW)
		assert.is_false(ok)
		assert.same({ "closed", "closed" }, woken)
		assert.matches("boom in the first", err)
		assert.matches("boom in the second", err)
	end)

	it("a coroutine error whose __tostring fails is reported, and the scheduler goes on", function()
		local ws = wsbeat.connect(srv:url("/close/1000"), { reconnect = false })
		wsbeat.spawn(function()
			ws:receive(5)
			error(setmetatable({}, { __tostring = function() error("no string for you") end }))
		end)
		local ok, err = pcall(wsbeat.run, 10 * H.SLOW)
		assert.is_false(ok)
		assert.matches("error object is not a string", err)
		-- still usable: another coroutine runs to its end
		local done = false
		wsbeat.spawn(function()
			local _, why = ws:receive(1)
			done = why == "closed"
		end)
		assert.is_true(wsbeat.run(5 * H.SLOW))
		assert.is_true(done)
	end)

	it("a spawned coroutine that yields outside receive() is reported, not waited for forever", function()
		local ok, err = pcall(wsbeat.spawn, function() coroutine.yield("mine") end)
		assert.is_false(ok)
		assert.matches("yielded outside receive%(%)", err)
		local ws = wsbeat.connect(srv:url("/send/1/4"), { reconnect = false })
		wsbeat.spawn(function()
			assert(ws:receive(5))
			coroutine.yield()
		end)
		ok, err = pcall(wsbeat.run, 10 * H.SLOW)
		assert.is_false(ok)
		assert.matches("yielded outside receive%(%)", err)
		ws:close()
		local t0 = core.now()
		assert.is_true(wsbeat.run(5 * H.SLOW)) -- nothing left to wait for
		assert.is_true(core.now() - t0 < 2 * H.SLOW)
	end)

	it("receive() raises on a client with on_message", function()
		local ws = H.client(srv:url())
		assert.has_error(function() ws:receive(0) end,
			"receive: this client has an on_message callback (no receive queue)")
		ws:close()
	end)

	it("sends an extra ping with ws:ping()", function()
		local ws = H.client(srv:url("/echo?ping"))
		local ok, err = ws:ping("x")
		assert.is_nil(ok)
		assert.equal("not open", err)
		H.wait_state(ws, "open")
		assert.is_true(ws:ping("hello"))
		local ev = srv:wait_event("ping", function(e) return e.len == 5 end)
		assert.equal(5, ev.len)
		assert.has_error(function() ws:ping(("x"):rep(126)) end)
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("negotiates a subprotocol", function()
		local ws = H.client(srv:url("/echo?proto"), { protocols = { "v2.example", "superchat", "chat" } })
		H.wait_state(ws, "open")
		assert.equal("superchat", ws:protocol())
		assert.equal("superchat", srv:wait_event("connect", function(e) return e.path == "/echo?proto" end).subprotocol)
		ws:close()
		H.wait_state(ws, "closed")
		assert.is_nil(ws:protocol())
		local ws2 = H.client(srv:url("/echo?noproto"), { protocols = { "v2.example" } })
		H.wait_state(ws2, "open")
		assert.is_nil(ws2:protocol())
		ws2:close()
	end)

	it("sends headers (table or function called per attempt) and origin", function()
		local calls = 0
		local ws, rec = H.client(srv:url("/headers"), {
			origin = "https://game.example",
			headers = function(ws)
				calls = calls + 1
				return { Authorization = "Bearer t" .. calls, ["X-Num"] = 42 }
			end,
		})
		H.run_until(function() return #rec.messages == 1 end, 5, "headers echo")
		local h = json.decode(rec.messages[1].data)
		assert.equal("Bearer t1", h.authorization)
		assert.equal("42", h["x-num"])
		assert.equal("https://game.example", h.origin)
		assert.equal(1, calls)
		ws:close()
		local ws2, rec2 = H.client(srv:url("/headers"), { headers = { ["X-Static"] = "yes" } })
		H.run_until(function() return #rec2.messages == 1 end, 5, "headers echo")
		assert.equal("yes", json.decode(rec2.messages[1].data)["x-static"])
		ws2:close()
		H.wait_state(ws2, "closed")
	end)

	it("connects over IPv6 loopback", function()
		local srv6 = H.server { host = "::1" }
		finally(function() srv6:stop() end)
		local ws, rec = H.client(srv6:url(), {
			on_state = function(ws, st) if st == "open" then ws:send("six") end end,
		})
		H.run_until(function() return #rec.messages == 1 end, 5, "echo")
		assert.equal("six", rec.messages[1].data)
		assert.equal("[::1]:" .. srv6.port, srv6:wait_event("connect").headers.host)
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("resolves host names without blocking and keeps Host as the name", function()
		local ws = H.client(("ws://localhost:%d/echo?named"):format(srv.port))
		H.wait_state(ws, "open")
		local ev = srv:wait_event("connect", function(e) return e.path == "/echo?named" end)
		assert.equal("localhost:" .. srv.port, ev.headers.host)
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("reports tostring, url and state", function()
		local ws = H.client(srv:url("/echo?ts"))
		assert.equal("wsbeat.client: " .. srv:url("/echo?ts") .. " (connecting)", tostring(ws))
		assert.equal(srv:url("/echo?ts"), ws:url())
		H.wait_state(ws, "open")
		assert.equal("wsbeat.client: " .. srv:url("/echo?ts") .. " (open)", tostring(ws))
		ws:close()
		H.wait_state(ws, "closed")
	end)
end)
