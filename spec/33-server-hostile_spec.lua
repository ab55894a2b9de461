-- Hostile clients against the server: a slowloris upgrade, a 1 MiB header,
-- protocol violations, a flood into a server that does not read, a ping
-- flood, connections past max_connections, a slow reader under broadcast.
-- The clients are spec/fixtures/rawclient.py, which writes exactly the bytes
-- a step says; the server runs in this process and is served while the
-- specs wait (peer:wait_event and run_until serve it).
local H = require "helper"
local wsbeat = require "wsbeat"
local core = require "wsbeat.core"
local json = require "dkjson"

local RAW = H.ROOT .. "/spec/fixtures/rawclient.py"

local function raw(port, script, rcvbuf)
	return (H.start_peer({ H.PYTHON, RAW, tostring(port), json.encode(script), rcvbuf and tostring(rcvbuf) or nil },
		{ name = "rawclient", ready = "^START" }))
end

-- Serve until the client printed DONE; its JSON events.
local function finish(peer, timeout)
	local ok, err = pcall(H.run_until, function()
		return (H.read_file(peer.log) or ""):find("\nDONE")
	end, timeout or 10, "the raw client to finish")
	peer:stop()
	if not ok then
		error(err .. "\nclient log:\n" .. (H.read_file(peer.log) or "") .. (H.read_file(peer.log .. ".err") or ""), 0)
	end
	return peer:events()
end

local function of(events, kind)
	local r = {}
	for _, e in ipairs(events) do if e.event == kind then r[#r + 1] = e end end
	return r
end

-- A server that records its connections' states.
local function server(opts)
	local rec = { opened = {}, closed = {} }
	opts.port = 0
	if opts.heartbeat == nil then opts.heartbeat = false end
	opts.on_state = function(conn, st, info)
		if st == "open" then rec.opened[#rec.opened + 1] = conn end
		if st == "closed" then rec.closed[#rec.closed + 1] = { conn = conn, cause = info.cause, code = info.code } end
	end
	local s = assert(wsbeat.listen(opts))
	return s, rec
end

describe("hostile clients #server", function()
	it("a slowloris upgrade (a byte every 0.1 s) is dropped at handshake_timeout; others are served meanwhile", function()
		local s = server { handshake_timeout = 0.5, on_message = function(c, d) c:send(d) end }
		finally(function() s:close() end)
		local request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" .. ("X-Slow: " .. ("z"):rep(300))
		local slow = raw(s:port(), { { raw_slowly = request, every = 0.1 } })
		-- a well-behaved client while the slow one dribbles
		local good = finish(raw(s:port(), { { upgrade = "/" }, { frame = { payload = "still here" } }, { read = 2 } }))
		assert.equal(101, of(good, "response")[1].status)
		assert.equal("still here", of(good, "frame")[1].text)
		local ev = of(finish(slow, 10), "eof")[1]
		assert.is_truthy(ev, "the slow client was never dropped")
		assert.is_true(ev.after >= 0.45, "dropped too early: " .. ev.after)
		assert.is_true(ev.after <= 0.5 + 1.0 * H.SLOW, "dropped too late: " .. ev.after)
		assert.is_true(ev.sent < #request)
		H.run_until(function() return s:stats().handshaking == 0 end, 2, "no handshake pending")
		assert.equal(1, s:stats().handshake_timeouts)
		assert.equal(1, s:stats().upgraded)
	end)

	it("a long Sec-WebSocket-Extensions (264 bytes of offers) is read whole; the first acceptable offer is taken", function()
		local offers = ("permessage-deflate; client_max_window_bits, "):rep(6) -- 264 bytes
		local plain, s = server {}, server { compression = true }
		finally(function() plain:close() s:close() end) -- (busted keeps one finally per test)
		local ev = finish(raw(plain:port(), { { upgrade = "/", headers = "Sec-WebSocket-Extensions: " .. offers .. "\r\n" } }))
		assert.equal(101, of(ev, "response")[1].status)
		assert.is_nil(of(ev, "response")[1].headers["sec-websocket-extensions"]) -- compression is off
		local bad = "permessage-deflate; server_max_window_bits=16, permessage-deflate; bogus, "
		ev = finish(raw(s:port(), { { upgrade = "/", headers = "Sec-WebSocket-Extensions: " .. bad .. offers .. "\r\n" } }))
		assert.equal(101, of(ev, "response")[1].status)
		assert.equal("permessage-deflate", of(ev, "response")[1].headers["sec-websocket-extensions"])
	end)

	it("a request that is not an upgrade, or a broken one, gets the HTTP status that says why", function()
		local s = server {}
		finally(function() s:close() end)
		local cases = {
			{ "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 426 },
			{ "POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
				"Sec-WebSocket-Key: d3NiZWF0LWhvc3RpbGUhIQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", 405 },
			{ "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
				"Sec-WebSocket-Key: d3NiZWF0LWhvc3RpbGUhIQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", 426 },
			{ "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
				"Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n", 400 },
			{ "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400 },
			{ "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505 },
		}
		for _, k in ipairs(cases) do
			local ev = finish(raw(s:port(), { { raw = k[1] }, { response = 3 } }))
			assert.equal(k[2], of(ev, "response")[1] and of(ev, "response")[1].status, k[1])
			assert.is_truthy(of(ev, "eof")[1], "the server did not close after its answer")
		end
		assert.equal(0, s:stats().upgraded)
	end)

	it("a 1 MiB header is refused without a hang, and the server serves on", function()
		local s = server { on_message = function(c, d) c:send(d) end }
		finally(function() s:close() end)
		local t0 = core.now()
		local ev = finish(raw(s:port(), { { big_header = 1024 * 1024 } }))
		local answer = of(ev, "response")[1] or of(ev, "eof")[1]
		assert.is_truthy(answer)
		if answer.status then assert.is_true(answer.status >= 400, "status " .. answer.status) end
		assert.is_true(core.now() - t0 < 5 * H.SLOW)
		assert.equal(0, s:stats().upgraded)
		H.run_until(function() return s:stats().handshaking == 0 end, 2, "no handshake pending")
		local good = finish(raw(s:port(), { { upgrade = "/" }, { frame = { payload = "after" } }, { read = 2 } }))
		assert.equal("after", of(good, "frame")[1].text)
	end)

	-- each violation on a fresh connection: the close code the client reads,
	-- right away, and then the end of the connection (the server fails it
	-- at once, without waiting for the client's answer)
	local violations = {
		{ "RSV1 without an extension", { payload = "hi", rsv = 4 }, 1002 },
		{ "a reserved opcode (3)", { opcode = 3, payload = "hi" }, 1002 },
		{ "a fragmented PING", { opcode = 9, payload = "p", fin = false }, 1002 },
		{ "a PING over 125 bytes", { opcode = 9, payload = ("p"):rep(126) }, 1002 },
		{ "a continuation with nothing to continue", { opcode = 0, payload = "x" }, 1002 },
		{ "a close frame with a 1-byte payload", { opcode = 8, payload_hex = "03" }, 1002 },
		{ "invalid UTF-8 in a text message", { payload_hex = "cebae1bdb9cf83cebcceb5eda080656469746564" }, 1007 },
		{ "an unmasked frame", { payload = "bare", mask = false }, 1002 },
		{ "RSV2", { payload = "hi", rsv = 2 }, 1002 },
		{ "a reserved control opcode (11)", { opcode = 11, payload = "" }, 1002 },
		{ "a text frame inside a fragmented message", { payload = "a", fin = false }, 1002, { payload = "b" } },
		{ "a close code that may not be sent (1005)", { opcode = 8, payload_hex = "03ed" }, 1002 },
		{ "a close code out of range (5000)", { opcode = 8, payload_hex = "1388" }, 1002 },
		{ "a close reason that is not UTF-8", { opcode = 8, payload_hex = "03e8ff" }, 1007 },
		{ "a text message cut inside a UTF-8 sequence", { payload_hex = "41e282" }, 1007 },
	}
	for _, v in ipairs(violations) do
		it(("%s: the client reads close %d, the server reports protocol_error"):format(v[1], v[3]), function()
			local s, rec = server {}
			finally(function() s:close() end)
			local steps = { { upgrade = "/" }, { frame = v[2] } }
			if v[4] then steps[#steps + 1] = { frame = v[4] } end
			steps[#steps + 1] = { read = 3 }
			local ev = finish(raw(s:port(), steps))
			assert.equal(101, of(ev, "response")[1].status)
			local frames = of(ev, "frame")
			local last = frames[#frames]
			assert.is_truthy(last, "no close frame came: " .. json.encode(ev))
			assert.equal(8, last.opcode)
			assert.equal(v[3], last.code)
			assert.is_truthy(of(ev, "eof")[1], "the server did not close the socket")
			H.run_until(function() return #rec.closed == 1 end, 3, "the server's close")
			assert.equal(v[3], rec.closed[1].code)
			assert.equal("protocol_error", rec.closed[1].cause)
		end)
	end

	it("permessage-deflate frames: inflated (also split over frames, with context), echoes deflated (RSV1)", function()
		local s, rec = server { compression = true, on_message = function(c, d) c:send(d) end }
		finally(function() s:close() end)
		local text = ("compress me please "):rep(50)
		local ev = finish(raw(s:port(), {
			{ upgrade = "/", headers = "Sec-WebSocket-Extensions: permessage-deflate\r\n" },
			{ frame = { payload = "Hello", deflate = true } },
			{ frame = { payload = text, deflate = true, split = 3 } },
			{ frame = { payload = "plain" } }, -- (uncompressed is allowed too)
			{ frame = { payload = text, deflate = true } }, -- (context taken over: tiny)
			{ read = 1 }, -- (the echoes, before our close)
			{ close = 1000 }, { read = 3 },
		}))
		assert.equal("permessage-deflate", of(ev, "response")[1].headers["sec-websocket-extensions"])
		local f = of(ev, "frame")
		assert.equal(5, #f, json.encode(ev))
		for i, want in ipairs { "Hello", text, "plain", text } do
			assert.equal(4, f[i].rsv, "echo " .. i .. " not deflated")
			assert.equal(want, f[i].inflated)
		end
		assert.is_true(f[2].len < #text / 10, "deflated to " .. f[2].len)
		assert.is_true(f[4].len < f[2].len, "the context was not taken over")
		assert.equal(8, f[5].opcode)
		assert.equal(1000, f[5].code)
		H.run_until(function() return #rec.closed == 1 end, 3, "the server's close")
		assert.equal("closed_by_peer", rec.closed[1].cause)
	end)

	it("permessage-deflate violations: corrupt data 1007, RSV1 on a continuation 1002, a bomb past max_message_size 1009", function()
		local s, rec = server { compression = true, max_message_size = 64 * 1024 }
		finally(function() s:close() end)
		local ext = { upgrade = "/", headers = "Sec-WebSocket-Extensions: permessage-deflate\r\n" }
		local cases = {
			{ { frame = { payload_hex = "ffffffff", rsv = 4 } }, 1007, "protocol_error" },
			{ { frame = { payload = "a", fin = false } }, { frame = { opcode = 0, payload = "b", rsv = 4 } }, 1002, "protocol_error" },
			{ { frame = { zeros = 1024 * 1024, deflate = true } }, 1009, "too_big" },
		}
		for i, k in ipairs(cases) do
			local steps = { ext }
			for j = 1, #k - 2 do steps[#steps + 1] = k[j] end
			steps[#steps + 1] = { read = 3 }
			local ev = finish(raw(s:port(), steps))
			local frames = of(ev, "frame")
			local last = frames[#frames]
			assert.is_truthy(last, "no close frame came: " .. json.encode(ev))
			assert.equal(8, last.opcode)
			assert.equal(k[#k - 1], last.code)
			H.run_until(function() return #rec.closed == i end, 3, "the server's close")
			assert.equal(k[#k - 1], rec.closed[i].code)
			assert.equal(k[#k], rec.closed[i].cause)
		end
	end)

	it("a valid message and a violation in one read: the echo goes out first, then close 1002", function()
		local s, rec = server { on_message = function(c, d) c:send(d) end }
		finally(function() s:close() end)
		local ev = finish(raw(s:port(), { { upgrade = "/" },
			{ frames = { { payload = "first" }, { payload = "second" }, { opcode = 3, payload = "bad" },
				{ payload = "never read" } } },
			{ read = 3 } }))
		local f = of(ev, "frame")
		assert.equal(3, #f, json.encode(ev))
		assert.same({ "first", "second" }, { f[1].text, f[2].text })
		assert.equal(8, f[3].opcode)
		assert.equal(1002, f[3].code)
		assert.is_truthy(of(ev, "eof")[1], "the server did not close the socket")
		H.run_until(function() return #rec.closed == 1 end, 3, "the server's close")
		assert.equal("protocol_error", rec.closed[1].cause)
		assert.equal(2, s:stats().messages_received)
	end)

	it("a message over max_message_size fails the connection at once with 1009, even when the client never answers", function()
		local s, rec = server { max_message_size = 1000, on_message = function(c, d) c:send(d) end }
		finally(function() s:close() end)
		local t0 = core.now()
		local ev = finish(raw(s:port(), { { upgrade = "/" }, { frame = { payload = ("x"):rep(5000) } }, { read = 3 } }))
		local frames = of(ev, "frame")
		assert.equal(1, #frames, json.encode(ev)) -- the close, and nothing after it
		assert.equal(8, frames[1].opcode)
		assert.equal(1009, frames[1].code)
		assert.is_truthy(of(ev, "eof")[1], "the server did not close the socket")
		H.run_until(function() return #rec.closed == 1 end, 3, "the server's close")
		assert.equal("too_big", rec.closed[1].cause)
		assert.equal(1009, rec.closed[1].code)
		assert.is_true(core.now() - t0 < 3 * H.SLOW)
		assert.equal(0, s:stats().connections)
	end)

	it("on_upgrade that closes its own server: the upgrade is refused with 503 and nothing opens", function()
		local s
		s = server { on_upgrade = function() s:close() return true end }
		finally(function() s:close() end)
		local ev = finish(raw(s:port(), { { upgrade = "/" } }))
		assert.equal(503, of(ev, "response")[1].status)
		for _ = 1, 5 do wsbeat.step() end
		assert.equal(0, s:stats().upgraded)
		assert.equal(0, s:stats().connections)
	end)

	it("ten PINGs in one read get ten PONGs, in order (libwebsockets 4.1 answered one)", function()
		local s = server {}
		finally(function() s:close() end)
		local pings, want = {}, {}
		for i = 1, 10 do
			pings[i] = { opcode = 9, payload = "p" .. i }
			want[i] = "p" .. i
		end
		local ev = finish(raw(s:port(), { { upgrade = "/" }, { frames = pings }, { read = 1 } }))
		local pongs = {}
		for _, f in ipairs(of(ev, "frame")) do
			if f.opcode == 10 then pongs[#pongs + 1] = f.text end
		end
		assert.same(want, pongs)
	end)

	it("a flood into a server that does not read is bounded by flow control (max_queue)", function()
		local s, rec = server { max_queue = 8 }
		finally(function() s:close() end)
		local peer = raw(s:port(), { { upgrade = "/" }, { flood = 200000, size = 1024, seconds = 3 }, { read = 1 } })
		H.run_until(function() return #rec.opened == 1 end, 5, "open")
		local conn = rec.opened[1]
		H.run_until(function() return #of(peer:events(), "flood") == 1 end, 10, "the flood to end")
		local flood = of(peer:events(), "flood")[1]
		assert.is_true(flood.blocked, "the client was never held back")
		assert.is_true(flood.sent < 200000, "everything went through: " .. flood.sent)
		-- the mark, and what one socket read past it held at most (lws
		-- reads 4 KiB at a time: four 1 KiB messages)
		local queued = conn:stats().queued
		assert.is_true(queued >= 8 and queued <= 8 + 4, "queued " .. queued)
		assert.equal("open", conn:state())
		-- reading resumes the flow: the next messages come in order
		for _ = 1, 20 do
			local data = assert(conn:receive(5))
			assert.equal(("f"):rep(1024), data)
		end
		finish(peer)
	end)

	it("a ping flood: the server answers, stays bounded and keeps serving others", function()
		local s = server { on_message = function(c, d) c:send(d) end }
		finally(function() s:close() end)
		local flooder = raw(s:port(), { { upgrade = "/" }, { flood = 20000, size = 8, opcode = 9, seconds = 5 },
			{ count = 2, opcode = 10 } })
		local rss0 = H.rss_kb()
		local good = finish(raw(s:port(), { { upgrade = "/" }, { frame = { payload = "ping flood aside" } }, { read = 2 } }))
		assert.equal("ping flood aside", of(good, "frame")[1].text)
		local ev = finish(flooder, 15)
		local count = of(ev, "count")[1]
		local flood = of(ev, "flood")[1]
		assert.is_truthy(count, json.encode(ev))
		assert.is_true(count.n >= 1 and count.n <= flood.sent, ("%d pongs for %d pings"):format(count.n, flood.sent))
		assert.is_true(H.rss_kb() - rss0 < 16 * 1024, "RSS grew " .. (H.rss_kb() - rss0) .. " KiB")
	end)

	it("connections past max_connections get 503; a freed slot is taken again", function()
		local s, rec = server { max_connections = 2 }
		finally(function() s:close() end)
		local a = raw(s:port(), { { upgrade = "/" }, { read = 10 } })
		local b = raw(s:port(), { { upgrade = "/" }, { read = 10 } })
		H.run_until(function() return #rec.opened == 2 end, 5, "two open")
		local c = finish(raw(s:port(), { { upgrade = "/" } }))
		assert.equal(503, of(c, "response")[1].status)
		assert.equal(1, s:stats().rejected_full)
		rec.opened[1]:close()
		H.run_until(function() return s:stats().connections == 1 end, 5, "one closed")
		local d = finish(raw(s:port(), { { upgrade = "/" } }))
		assert.equal(101, of(d, "response")[1].status)
		a:stop()
		b:stop()
	end)

	for _, policy in ipairs { "close", "refuse" } do
		it(("a slow reader under broadcast (on_full = %q) never holds up the others"):format(policy), function()
			local SB = 64 * 1024
			local s, rec = server { send_buffer = SB, on_full = policy }
			finally(function() s:close() end)
			-- the slow one reads nothing for 6 s, then everything it was sent
			local slow = raw(s:port(), { { upgrade = "/slow" }, { sleep = 6 }, { count = 3, opcode = 1 } }, 4096)
			H.run_until(function() return #rec.opened == 1 end, 5, "slow open")
			local fast = raw(s:port(), { { upgrade = "/fast" }, { count = 6, opcode = 1 } })
			H.run_until(function() return #rec.opened == 2 end, 5, "fast open")
			local slow_conn, fast_conn = rec.opened[1], rec.opened[2]
			local N, msg = 2000, ("m"):rep(4096)
			local skipped = 0
			for _ = 1, N do
				-- paced by the fast reader: it never falls behind
				H.run_until(function() return fast_conn:stats().buffered == 0 end, 5, "the fast reader")
				local n = s:broadcast(msg)
				if n < 2 then skipped = skipped + 1 end
				if policy == "refuse" and slow_conn:state() == "open" then
					assert.is_true(slow_conn:stats().buffered <= SB + #msg + 16,
						"slow buffered " .. slow_conn:stats().buffered)
				end
			end
			assert.is_true(skipped > 0, "the slow reader never filled up")
			local fast_count = of(finish(fast, 15), "count")[1]
			assert.equal(N, fast_count.n)
			if policy == "close" then
				local closed
				for _, c in ipairs(rec.closed) do if c.conn == slow_conn then closed = c end end
				assert.is_truthy(closed, "the slow reader was not closed")
				assert.equal("slow_consumer", closed.cause)
				assert.equal(1008, closed.code)
				assert.equal(1, s:stats().slow_consumers)
			else
				assert.equal("open", slow_conn:state())
				assert.equal(0, s:stats().slow_consumers)
			end
			local got = of(finish(slow, 15), "count")[1]
			assert.is_true(got.n < N, "the slow reader got everything")
			if policy == "close" then assert.is_true(got.eof, "no close for the slow reader") end
		end)
	end
end)

-- A wss server's TLS is wsbeat's own (memory BIOs over the raw socket):
-- the records behind the request, in the same read or later, are the
-- connection's first frames; a client that does not speak TLS, or lacks
-- the certificate the server requires, is dropped and counted; a refusal
-- arrives whole over TLS.
describe("hostile clients over wss #server", function()
	local c = H.certs()
	local tls = { cert_file = c .. "/server.pem", key_file = c .. "/server.key" }

	for _, split in ipairs { false, true } do
		it(("frames right behind the request (%s) are the connection's first, in order"):format(
			split and "one TLS record each" or "in the request's own TLS record"), function()
			local s = server { tls = tls, on_message = function(conn, d) conn:send(d) end }
			finally(function() s:close() end)
			local ev = finish(raw(s:port(), { { tls = c .. "/ca.pem" },
				{ upgrade_and = { { payload = "one" }, { payload = "two" }, { payload = "three" } }, split = split },
				{ read = 1 } }))
			assert.equal(101, of(ev, "response")[1].status)
			local texts = {}
			for _, f in ipairs(of(ev, "frame")) do texts[#texts + 1] = f.text end
			assert.same({ "one", "two", "three" }, texts)
			assert.equal(3, s:stats().messages_received)
		end)
	end

	it("a client that speaks plain HTTP to it is dropped at once and counted; others are served", function()
		local now = require("wsbeat.core").now
		local s = server { tls = tls, handshake_timeout = 30, on_message = function(conn, d) conn:send(d) end }
		finally(function() s:close() end)
		local t0 = now()
		local ev = finish(raw(s:port(), { { upgrade = "/" } }))
		assert.equal(1, #of(ev, "eof"))
		assert.equal(0, #of(ev, "response"))
		assert.is_true(now() - t0 < 3 * H.SLOW, "not dropped at once") -- (long before handshake_timeout)
		H.run_until(function() return s:stats().tls_failures == 1 end, 2, "tls_failures counted")
		ev = finish(raw(s:port(), { { tls = c .. "/ca.pem" }, { upgrade = "/" }, { frame = { payload = "fine" } }, { read = 1 } }))
		assert.equal("fine", of(ev, "frame")[1].text)
		assert.equal(0, s:stats().handshaking)
		assert.equal(1, s:stats().upgraded)
	end)

	it("a refusal and a 426 arrive whole over TLS", function()
		local s = server { tls = tls, on_upgrade = function(req) return req.path ~= "/deny", 401, "who are you" end }
		finally(function() s:close() end)
		local ev = finish(raw(s:port(), { { tls = c .. "/ca.pem" },
			{ raw = "GET /deny HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
				"Sec-WebSocket-Key: d3NiZWF0LWhvc3RpbGUhIQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" },
			{ response = 3 } }))
		assert.equal(401, of(ev, "response")[1].status)
		assert.equal(1, #of(ev, "eof")) -- (the end, not "quiet")
		assert.is_nil(of(ev, "eof")[1].unclean) -- (close_notify first)
		ev = finish(raw(s:port(), { { tls = c .. "/ca.pem" }, { raw = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n" },
			{ response = 3 } }))
		assert.equal(426, of(ev, "response")[1].status)
		assert.equal(1, #of(ev, "eof"))
		assert.is_nil(of(ev, "eof")[1].unclean)
		assert.equal(0, s:stats().tls_failures)
	end)
end)
