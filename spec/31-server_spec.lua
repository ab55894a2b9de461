-- The server side (wsbeat.listen) against real clients: python websockets,
-- node ws and wsbeat's own client, over ws and wss (with client
-- certificates), subprotocols, big messages, the upgrade hook,
-- accept(), broadcast, a graceful shutdown.  The server runs in this
-- process; client processes print START before they connect, so waiting
-- for it never holds up the server, and everything after is waited for
-- with run_until, which serves it.
local H = require "helper"
local wsbeat = require "wsbeat"
local json = require "dkjson"

-- Start a client process (argv) and serve until it printed DONE; its JSON
-- lines, in order.
local function run_client(argv, timeout)
	local peer = H.start_peer(argv, { name = "client", ready = "^START" })
	local ok, err = pcall(H.run_until, function()
		return (H.read_file(peer.log) or ""):find("\nDONE")
	end, timeout or 15, "the client to finish")
	peer:stop()
	if not ok then error(err .. "\nclient log:\n" .. (H.read_file(peer.log) or "") ..
		(H.read_file(peer.log .. ".err") or ""), 0) end
	return peer:events(), peer
end

local function py(url, script, ...)
	return run_client({ H.PYTHON, H.ROOT .. "/spec/fixtures/client.py", url, json.encode(script), ... })
end

local function node(url, script, ...)
	return run_client({ "node", H.ROOT .. "/spec/fixtures/node-client.js", url, json.encode(script), ... })
end

local function of(events, kind)
	local r = {}
	for _, e in ipairs(events) do if e.event == kind then r[#r + 1] = e end end
	return r
end

local server = H.listen -- (records states, opened, messages; echoes)

local function stop(s)
	if s then s:close() end
end

describe("server #server", function()
	it("echoes a python websockets client: text, binary, 5 MiB; picks the subprotocol by its own preference", function()
		local s, rec = server { protocols = { "chat", "superchat" } }
		finally(function() stop(s) end)
		local ev = py(rec.url("/echo"), {
			{ send = "hello" }, { recv = 1 },
			{ send_hex = "00ff10" }, { recv = 1 },
			{ send_big = 5 * 1024 * 1024 }, { recv = 1 },
			{ close = 1000 },
		}, "--protocols", "superchat,chat")
		assert.equal("chat", of(ev, "open")[1].subprotocol)
		local m = of(ev, "message")
		assert.equal("hello", m[1].text)
		assert.equal("00ff10", m[2].hex)
		assert.equal(5 * 1024 * 1024, m[3].len)
		assert.is_true(m[3].pattern_ok)
		assert.equal(1000, of(ev, "closed")[1].code)
		-- the server's side of it
		H.run_until(function() return #rec.closed() == 1 end, 5, "server closed")
		assert.same({ "open", "closed" }, { rec.states[1].state, rec.states[2].state })
		assert.equal("accepted", rec.states[1].cause)
		assert.equal("closed_by_peer", rec.states[2].cause)
		assert.equal(1000, rec.states[2].code)
		assert.equal("text", rec.messages[1].kind)
		assert.equal("binary", rec.messages[2].kind)
		assert.equal("\0\255\16", rec.messages[2].data)
		assert.equal(0, s:stats().connections)
		assert.equal(3, s:stats().messages_received)
	end)

	-- permessage-deflate with each real client: text that compresses well,
	-- 5 MiB, binary, in both directions, the extension agreed
	local deflate_script = {
		{ send = "deflate me " .. ("x"):rep(1000) }, { recv = 1 },
		{ send_big = 5 * 1024 * 1024 }, { recv = 1 },
		{ send_hex = "0102" }, { recv = 1 },
		{ send = "deflate me " .. ("x"):rep(1000) }, { recv = 1 },
		{ close = 1000 },
	}
	local function check_deflate_echoes(ev, s, rec)
		local m = of(ev, "message")
		assert.equal(4, #m, json.encode(ev))
		assert.equal(1011, m[1].len) -- (reported by length: over 1000 bytes)
		assert.equal(5 * 1024 * 1024, m[2].len)
		assert.is_true(m[2].pattern_ok)
		assert.equal("0102", m[3].hex)
		assert.equal(1011, m[4].len)
		assert.equal(1000, of(ev, "closed")[1].code)
		H.run_until(function() return #rec.closed() == 1 end, 5, "server closed")
		assert.equal("deflate me " .. ("x"):rep(1000), rec.messages[1].data)
		assert.equal(5 * 1024 * 1024, #rec.messages[2].data)
		assert.equal(("abcdefghijklmnopqrstuvwxyz"):rep(2), rec.messages[2].data:sub(1, 52))
		assert.equal("\1\2", rec.messages[3].data)
		assert.equal(rec.messages[1].data, rec.messages[4].data)
		assert.equal(4, s:stats().messages_received)
	end

	it("permessage-deflate with a python websockets client (the extension agreed, both directions)", function()
		local s, rec = server { compression = true }
		finally(function() stop(s) end)
		local ev = py(rec.url("/"), deflate_script, "--compression")
		assert.same({ "permessage-deflate" }, of(ev, "open")[1].extensions)
		check_deflate_echoes(ev, s, rec)
	end)

	it("permessage-deflate with a node ws client, with a subprotocol", function()
		local s, rec = server { compression = true, protocols = "chat" }
		finally(function() stop(s) end)
		local ev = node(rec.url("/"), deflate_script, "--protocols", "chat", "--compression")
		local open = of(ev, "open")[1]
		assert.equal("chat", open.subprotocol)
		assert.equal("permessage-deflate", open.extensions)
		check_deflate_echoes(ev, s, rec)
	end)

	it("permessage-deflate with wsbeat's own client, over wss too; a server without compression declines the offer", function()
		for _, tls in ipairs { false, true } do
			local opts = { compression = true }
			local c = H.certs()
			if tls then opts.tls = { cert_file = c .. "/server.pem", key_file = c .. "/server.key" } end
			local s, rec = server(opts)
			finally(function() stop(s) end)
			local big = H.big_pattern(5, 5 * 1024 * 1024)
			local ws, crec = H.client(rec.url("/z"), { compression = true, reconnect = false,
				tls = tls and { ca_file = c .. "/ca.pem" } or nil })
			H.wait_state(ws, "open")
			-- (one at a time: a compressing client queues every message,
			-- and one bigger than send_buffer goes only on an empty queue)
			for i, m in ipairs { ("abc"):rep(5000), big, "é" } do
				assert(ws:send(m, i == 2 and "binary" or "text"))
				H.run_until(function() return #crec.messages == i end, 20, "echo " .. i)
			end
			assert.equal(("abc"):rep(5000), crec.messages[1].data)
			assert.equal(big, crec.messages[2].data)
			assert.equal("é", crec.messages[3].data)
			ws:close()
			H.wait_state(ws, "closed")
			s:close()
		end
		-- declined: the client's offer is ignored and messages go plain
		local s, rec = server {}
		finally(function() stop(s) end)
		local ev = py(rec.url("/"), { { send = "plain" }, { recv = 1 }, { close = 1000 } }, "--compression")
		assert.same({}, of(ev, "open")[1].extensions)
		assert.equal("plain", of(ev, "message")[1].text)
	end)

	it("echoes wsbeat's own client; a client offering none of its subprotocols gets none", function()
		local s, rec = server { protocols = { "v2", "v1" } }
		finally(function() stop(s) end)
		local big = H.big_pattern(3, 5 * 1024 * 1024)
		local ws, crec = H.client(rec.url("/app"), { protocols = { "v1", "v2" }, reconnect = false })
		H.wait_state(ws, "open")
		assert.equal("v2", ws:protocol())
		ws:send("one")
		ws:send(big, "binary")
		H.run_until(function() return #crec.messages == 2 end, 20, "echoes")
		assert.equal("one", crec.messages[1].data)
		assert.equal(big, crec.messages[2].data)
		assert.equal("binary", crec.messages[2].kind)
		ws:close()
		H.wait_state(ws, "closed")
		local ws2 = H.client(rec.url("/"), { protocols = "other", reconnect = false })
		H.wait_state(ws2, "open")
		assert.is_nil(ws2:protocol())
		ws2:close()
		H.wait_state(ws2, "closed")
		-- the server's connection saw the client's close
		H.run_until(function() return #rec.closed() == 2 end, 5, "server closed")
		assert.equal("closed_by_peer", rec.closed()[1].cause)
		assert.equal(1000, rec.closed()[1].code)
	end)

	it("serves wss, verified by the clients, and requires client certificates when told", function()
		local c = H.certs()
		local s, rec = server { tls = { cert_file = c .. "/server.pem", key_file = c .. "/server.key" } }
		finally(function() stop(s) end)
		local ev = py(rec.url("/"), { { send = "secure" }, { recv = 1 }, { close = 1000 } }, "--ca", c .. "/ca.pem")
		assert.equal("secure", of(ev, "message")[1].text)
		local ws, crec = H.client(rec.url("/"), { tls = { ca_file = c .. "/ca.pem" }, reconnect = false })
		H.wait_state(ws, "open")
		ws:send("also secure")
		H.run_until(function() return #crec.messages == 1 end, 5, "echo")
		assert.equal("also secure", crec.messages[1].data)
		ws:close()
		s:close()

		local s2, rec2 = server { tls = { cert_file = c .. "/server.pem", key_file = c .. "/server.key",
			ca_file = c .. "/ca.pem", verify_client = true } }
		finally(function() stop(s2) end)
		ev = py(rec2.url("/"), { { send = "with cert" }, { recv = 1 }, { close = 1000 } },
			"--ca", c .. "/ca.pem", "--cert", c .. "/client.pem", "--key", c .. "/client.key")
		assert.equal("with cert", of(ev, "message")[1].text)
		ev = py(rec2.url("/"), { { send = "no cert" }, { recv = 1 } }, "--ca", c .. "/ca.pem")
		assert.equal(0, #of(ev, "message"))
		assert.equal(1, #of(ev, "error") + #of(ev, "closed"))
		H.run_until(function() return s2:stats().tls_failures == 1 end, 5, "the refused handshake counted")
		local ws2 = H.client(rec2.url("/"), { reconnect = false, tls = { ca_file = c .. "/ca.pem",
			cert_file = c .. "/client.pem", key_file = c .. "/client.key" } })
		H.wait_state(ws2, "open")
		ws2:close()
		H.wait_state(ws2, "closed")
		-- only the two clients with certificates ever opened
		assert.equal(2, #rec2.opened)
	end)

	it("asks on_upgrade: path, query (decoded), every header by its lower-case name, remote, offered subprotocols", function()
		local seen
		local s, rec = server {
			protocols = { "a", "b" },
			on_upgrade = function(req)
				local names = {}
				for k in pairs(req.headers) do names[#names + 1] = k end
				table.sort(names)
				seen = { path = req.path, query = req.query, remote = req.remote,
					ua = req.headers["user-agent"], token = req.headers["x-token"],
					protocols = req.protocols, port = req.remote_port, names = names,
					many = req.headers["x-many"] }
				if req.path == "/deny" then return false, 401, "who are you" end
				if req.path == "/pick" then return true, "b" end
				return true
			end,
		}
		finally(function() stop(s) end)
		local ev = py(rec.url("/pick?room=7&x=y%20z"), { { close = 1000 } },
			"--protocols", "a,b", "--header", "X-Token:s3cret", "--header", "X-Many:1", "--header", "X-Many:2")
		assert.equal("b", of(ev, "open")[1].subprotocol)
		assert.equal("/pick", seen.path)
		assert.equal("room=7&x=y z", seen.query)
		assert.equal("127.0.0.1", seen.remote)
		assert.is_true(seen.port > 0)
		assert.matches("^Python", seen.ua)
		assert.equal("s3cret", seen.token)
		assert.same({ "a", "b" }, seen.protocols)
		assert.equal("1, 2", seen.many) -- (a repeated header: its values joined)
		local listed = {}
		for _, name in ipairs(seen.names) do listed[name] = true end
		for _, name in ipairs { "host", "upgrade", "connection", "sec-websocket-key", "x-token", "x-many" } do
			assert.is_true(listed[name], name .. " not listed: " .. table.concat(seen.names, " "))
		end
		-- conn:request() keeps what on_upgrade saw
		local req = rec.opened[1]:request()
		assert.equal("/pick", req.path)
		assert.equal("s3cret", req.headers["x-token"])
		assert.same({ "a", "b" }, req.protocols)

		ev = py(rec.url("/deny"), { { close = 1000 } })
		assert.equal(401, of(ev, "error")[1].status)
		assert.equal(1, s:stats().refused)
		assert.equal(1, #rec.opened) -- the refused one never opened
	end)

	-- The engine reads on before it writes what callbacks sent (a batch),
	-- so a request can be read while Lua is between two callbacks: it
	-- must go through on_upgrade all the same.  The server's on_message
	-- waits until the second client's request is in its socket, then
	-- sends (a batch to write), so that request is read in that read-on.
	it("an upgrade request read while callbacks' sends wait to be written still goes through on_upgrade", function()
		local asked = 0
		local s, rec
		s, rec = server {
			on_upgrade = function(req)
				asked = asked + 1
				if req.path == "/late" then return false, 401, "no" end
				return true
			end,
			on_message = function(conn, data)
				local deadline = require("wsbeat.core").now() + 5 * H.SLOW
				local queued = ("ss -Htn state established '( sport = :%d )' | awk '$1 > 0'"):format(s:port())
				while H.sh(queued) == "" do
					assert(require("wsbeat.core").now() < deadline, "the late request never arrived")
					H.sleep(0.01)
				end
				conn:send(data)
			end,
		}
		finally(function() stop(s) end)
		local ws, crec = H.client(rec.url("/first"), { reconnect = false, heartbeat = false })
		H.wait_state(ws, "open")
		local late = H.start_peer({ H.PYTHON, H.ROOT .. "/spec/fixtures/rawclient.py", tostring(s:port()),
			json.encode { { sleep = 0.5 }, { upgrade = "/late" } } }, { name = "rawclient", ready = "^START" })
		H.run_until(function() return s:stats().accepted == 2 end, 5, "the late client's connection")
		ws:send("go") -- (sent before the late request: its callback waits for it)
		H.run_until(function() return #crec.messages == 1 end, 10, "the echo")
		H.run_until(function() return (H.read_file(late.log) or ""):find("\nDONE") end, 10, "the late client")
		late:stop()
		local resp
		for _, e in ipairs(late:events()) do if e.event == "response" then resp = e end end
		assert.equal(401, resp and resp.status)
		assert.equal(2, asked)
		assert.equal(1, s:stats().refused)
		assert.equal(1, #rec.opened)
		ws:close()
	end)

	it("an error in on_upgrade refuses with 500 and goes to on_error; so does a wrong answer", function()
		local errors = {}
		local s, rec = server {
			protocols = { "a" },
			on_upgrade = function(req)
				if req.path == "/boom" then error("kaboom") end
				return true, "not-offered"
			end,
			on_error = function(obj, err) errors[#errors + 1] = { obj = obj, err = err } end,
		}
		finally(function() stop(s) end)
		local ev = py(rec.url("/boom"), { { close = 1000 } })
		assert.equal(500, of(ev, "error")[1].status)
		H.run_until(function() return #errors == 1 end, 5, "on_error")
		assert.matches("kaboom", errors[1].err)
		assert.equal(s, errors[1].obj)
		ev = py(rec.url("/x"), { { close = 1000 } }, "--protocols", "a")
		assert.equal(500, of(ev, "error")[1].status)
		H.run_until(function() return #errors == 2 end, 5, "on_error")
		assert.matches("did not offer", errors[2].err)
		assert.equal(0, #rec.opened)
	end)

	it("answers a plain HTTP request with 426 and closes it", function()
		local s = server {}
		finally(function() stop(s) end)
		local peer = H.start_peer({ "sh", "-c", ("echo START; curl -s -i --max-time 5 http://127.0.0.1:%d/; echo; echo DONE")
			:format(s:port()) }, { name = "curl", ready = "^START" })
		H.run_until(function() return (H.read_file(peer.log) or ""):find("\nDONE") end, 10, "curl")
		peer:stop()
		local out = H.read_file(peer.log)
		assert.matches("^START\nHTTP/1.1 426 Upgrade Required\r\n", out)
		assert.matches("\r\nUpgrade: websocket\r\n", out, 1, true)
		assert.matches("upgrade required", out, 1, true)
	end)

	it("accept() hands new connections to spawned coroutines", function()
		local s = assert(wsbeat.listen { port = 0 })
		finally(function() stop(s) end)
		local served, ended, acceptor_end = {}, 0, nil
		wsbeat.spawn(function()
			while true do
				local conn, why = s:accept()
				if not conn then acceptor_end = why break end
				wsbeat.spawn(function()
					-- (receive(), not `for data in conn:messages()`: 5.1
					-- cannot yield from a generic for's iterator)
					while true do
						local data = conn:receive()
						if not data then break end
						served[#served + 1] = data
						conn:send("re: " .. data)
					end
					ended = ended + 1
				end)
			end
		end)
		local url = ("ws://127.0.0.1:%d/"):format(s:port())
		local a, ra = H.client(url, { reconnect = false })
		local b, rb = H.client(url, { reconnect = false })
		H.wait_state(a, "open")
		H.wait_state(b, "open")
		a:send("from a")
		b:send("from b")
		H.run_until(function() return #ra.messages == 1 and #rb.messages == 1 end, 5, "replies")
		assert.equal("re: from a", ra.messages[1].data)
		assert.equal("re: from b", rb.messages[1].data)
		a:close()
		b:close()
		s:close()
		-- the acceptor saw the server close and ended, and so did both
		-- connections' coroutines (run() would also wait for whatever
		-- earlier specs left in this process)
		H.run_until(function() return acceptor_end and ended == 2 end, 5, "the coroutines to end")
		assert.equal("closed", acceptor_end)
		assert.equal(2, #served)
	end)

	it("accept() with a timeout, outside coroutines", function()
		local s = assert(wsbeat.listen { port = 0 })
		finally(function() stop(s) end)
		local t0 = require("wsbeat.core").now()
		local conn, err = s:accept(0.2)
		assert.is_nil(conn)
		assert.equal("timeout", err)
		assert.is_true(require("wsbeat.core").now() - t0 >= 0.2)
		local ws = H.client(("ws://127.0.0.1:%d/"):format(s:port()), { reconnect = false })
		conn = assert(s:accept(5 * H.SLOW))
		assert.equal("open", conn:state())
		local addr, port = conn:remote()
		assert.equal("127.0.0.1", addr)
		assert.is_true(port > 0)
		assert.matches("^wsbeat.conn: 127.0.0.1:%d+ / %(open%)$", tostring(conn))
		ws:send("queued for receive")
		assert.equal("queued for receive", (conn:receive(5)))
		ws:close()
		assert.same({ nil, "closed" }, { conn:receive(5) })
		s:close()
		assert.same({ nil, "closed" }, { s:accept(0) })
	end)

	it("broadcast reaches every open connection (or those the filter picks), big messages framed once", function()
		local s, rec = server { on_message = false }
		finally(function() stop(s) end)
		local clients = {}
		for i = 1, 3 do
			local ws, r = H.client(rec.url("/room/" .. i), { reconnect = false })
			clients[i] = { ws = ws, rec = r }
		end
		H.run_until(function() return s:stats().connections == 3 and #rec.opened == 3 end, 5, "3 open")
		assert.equal(3, s:broadcast("to all"))
		assert.equal(1, s:broadcast("to 2", "text", function(conn) return conn:request().path == "/room/2" end))
		local big = H.big_pattern(9, 200 * 1024)
		assert.equal(3, s:broadcast(big, "binary"))
		local n = 0
		for _ in s:clients() do n = n + 1 end
		assert.equal(3, n)
		H.run_until(function()
			return #clients[1].rec.messages == 2 and #clients[2].rec.messages == 3 and #clients[3].rec.messages == 2
		end, 10, "broadcasts")
		for i = 1, 3 do
			local m = clients[i].rec.messages
			assert.equal("to all", m[1].data)
			assert.equal(big, m[#m].data)
			assert.equal("binary", m[#m].kind)
		end
		assert.equal("to 2", clients[2].rec.messages[2].data)
		assert.same({ nil, "invalid UTF-8" }, { s:broadcast("\255", "text") })
		assert.has_error(function() s:broadcast("x", "nope") end)
		for i = 1, 3 do clients[i].ws:close() end
	end)

	it("server:close() stops listening at once, closes everyone with 1001 and waits; the port is free again", function()
		local s, rec = server {}
		local port = s:port()
		local ws, crec = H.client(rec.url("/"), { reconnect = false })
		H.wait_state(ws, "open")
		local ev_peer = H.start_peer({ H.PYTHON, H.ROOT .. "/spec/fixtures/client.py", rec.url("/"),
			json.encode { { wait_close = 20 } } }, { name = "client", ready = "^START" })
		H.run_until(function() return s:stats().connections == 2 end, 5, "2 connections")
		s:close()
		-- close() waited for both connections
		assert.equal(0, s:stats().connections)
		assert.is_false(s:stats().listening)
		local cl = rec.closed()
		assert.equal(2, #cl)
		for _, st in ipairs(cl) do
			assert.equal("server_closed", st.cause)
			assert.equal(1001, st.code)
		end
		H.wait_state(ws, "closed")
		assert.equal("closed_by_peer", crec.infos[#crec.infos].cause)
		assert.equal(1001, crec.infos[#crec.infos].code)
		H.run_until(function() return (H.read_file(ev_peer.log) or ""):find("\nDONE") end, 5, "python client")
		assert.equal(1001, of(ev_peer:events(), "closed")[1].code)
		ev_peer:stop()
		-- the port can be bound again
		local s2 = assert(wsbeat.listen { port = port })
		assert.equal(port, s2:port())
		s2:close()
		-- a new connection to the closed server is refused, not left hanging
		local ws3, r3 = H.client(("ws://127.0.0.1:%d/"):format(port), { reconnect = false })
		H.wait_state(ws3, "closed")
		assert.equal("refused", r3.infos[#r3.infos].cause)
	end)

	it("listens on IPv6, and says why when it cannot listen", function()
		local s = assert(wsbeat.listen { host = "::1", port = 0, on_message = function(c, d) c:send(d) end })
		finally(function() stop(s) end)
		local ws, crec = H.client(("ws://[::1]:%d/"):format(s:port()), { reconnect = false })
		H.wait_state(ws, "open")
		ws:send("v6")
		H.run_until(function() return #crec.messages == 1 end, 5, "echo")
		assert.equal("v6", crec.messages[1].data)
		assert.equal(("wsbeat.server: ws://[::1]:%d (listening, 1 connections)"):format(s:port()), tostring(s))
		ws:close()
		local taken = assert(wsbeat.listen { port = 0 })
		local again, err = wsbeat.listen { port = taken:port() }
		taken:close()
		assert.is_nil(again)
		assert.matches("cannot listen on 127.0.0.1 port %d+: Address already in use", err)
		assert.has_error(function() wsbeat.listen {} end,
			"bad argument #1 to 'listen' (option 'port': required (0 picks a free port))")
		assert.has_error(function() wsbeat.listen { port = 0, on_full = "drop" } end,
			"bad argument #1 to 'listen' (option 'on_full': expected 'refuse' or 'close')")
		assert.has_error(function() wsbeat.listen { port = 0, tls = { cert_file = "/nonexistent" } } end)
		-- files that exist but do not load: nil and why, naming the option
		local c = H.certs()
		local s2, e2 = wsbeat.listen { port = 0, tls = { cert_file = c .. "/server.pem", key_file = c .. "/client.key" } }
		assert.is_nil(s2)
		assert.matches("cannot load tls.key_file '" .. c .. "/client.key': key values mismatch", e2, 1, true)
		local junk = os.tmpname() -- (removed at once: busted keeps one finally per test)
		local f = assert(io.open(junk, "w"))
		f:write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
		f:close()
		s2, e2 = wsbeat.listen { port = 0, tls = { cert_file = junk, key_file = c .. "/server.key" } }
		os.remove(junk)
		assert.is_nil(s2)
		assert.matches("cannot load tls.cert_file '" .. junk .. "': ", e2, 1, true)
	end)

	it("examples/echo-server.lua serves clients", function()
		local peer, port = H.start_peer(H.lua_argv(H.ROOT .. "/examples/echo-server.lua", "0"),
			{ name = "example", ready = "listening on port (%d+)" })
		finally(function() peer:stop() end)
		local ws, crec = H.client(("ws://127.0.0.1:%s/"):format(port), { reconnect = false })
		H.wait_state(ws, "open")
		ws:send("example")
		H.run_until(function() return #crec.messages == 1 end, 5, "echo")
		assert.equal("example", crec.messages[1].data)
		ws:close()
		H.wait_state(ws, "closed")
	end)

	-- libuv restarts epoll_wait after a signal; the interpreter's SIGINT
	-- handler only sets a hook, so the wait must come back to Lua for it.
	-- Before, an idle server took its next timer (about 30 s) to stop.
	local function interrupt(peer)
		local now = require("wsbeat.core").now
		local t0 = now()
		peer:signal("INT")
		while not H.exited(peer.pid) and now() - t0 < 10 do H.sleep(0.01) end
		local took = now() - t0
		assert.is_true(H.exited(peer.pid), peer.name .. " still running 10 s after SIGINT")
		assert.is_true(took < 2 * H.SLOW, ("%s stopped %.2f s after SIGINT"):format(peer.name, took))
		assert.matches("interrupted!", H.read_file(peer.log .. ".err"), 1, true)
	end

	it("Ctrl-C stops an idle wsbeat.run() at once", function()
		local peer = H.start_peer(H.lua_argv(H.ROOT .. "/examples/echo-server.lua", "0"),
			{ name = "example", ready = "listening on port (%d+)" })
		finally(function() peer:stop() end)
		H.sleep(0.3) -- (well inside run()'s wait by now)
		interrupt(peer)
	end)

	-- Just after a turn that delivered something, run() waits in libuv
	-- (one system call less); that wait is capped, so Ctrl-C still works.
	it("Ctrl-C stops wsbeat.run() just after a message too", function()
		local echo, port = H.start_peer(H.lua_argv(H.ROOT .. "/examples/echo-server.lua", "0"),
			{ name = "example", ready = "listening on port (%d+)" })
		local script = [[
			local wsbeat = require "wsbeat"
			wsbeat.connect("ws://127.0.0.1:]] .. port .. [[/", {
				on_state = function(ws, s) if s == "open" then ws:send("x") end end,
				on_message = function() print("ECHO") io.stdout:flush() end,
			})
			wsbeat.run()]]
		local client = H.start_peer(H.lua_argv("-e", script),
			{ name = "ctrl-c-client", ready = "ECHO" })
		finally(function() H.stop(client, echo) end)
		interrupt(client)
	end)
end)
