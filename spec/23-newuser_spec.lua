-- What a new user runs into: the environment must not redirect connections,
-- the upgrade request names wsbeat, nothing received after close() is lost,
-- 1001 is a close code a client may send, ping() gives an RTT, and options
-- that mean nothing raise.
local H = require "helper"
local wsbeat = require "wsbeat"

local q = H.quote

local function lua_child(script, env)
	local path = H.tmpdir() .. "/child-" .. tostring(math.floor(require("wsbeat.core").now() * 1e6)) .. ".lua"
	local f = assert(io.open(path, "w"))
	f:write(script)
	f:close()
	local vars = {}
	for k, v in pairs(env or {}) do vars[#vars + 1] = q(k .. "=" .. v) end
	table.sort(vars)
	return H.sh(("cd %s && env %s LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;' timeout 30 lua5.4 %s 2>&1; echo rc=$?")
		:format(q(H.ROOT), table.concat(vars, " "), q(path)))
end

-- A TCP listener that records every connection made to it (a proxy that a
-- leaked environment variable would send wsbeat to).
local function fake_proxy()
	local script = [[
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
print("PORT %d" % s.getsockname()[1], flush=True)
while True:
    c, a = s.accept()
    c.settimeout(1)
    try:
        first = c.recv(200).split(b"\r\n")[0].decode("latin-1")
    except Exception:
        first = ""
    print("CONNECTION " + first, flush=True)
    c.close()
]]
	local px, port = H.start_peer({ H.PYTHON, "-c", script }, { name = "fakeproxy", stderr = false })
	px.port = tonumber(port)
	function px.connections()
		local n = 0
		for _ in (H.read_file(px.log) or ""):gmatch("CONNECTION") do n = n + 1 end
		return n
	end
	return px
end

describe("only wsbeat's own rules read the proxy environment", function()
	-- libwebsockets would send every connection through http_proxy, with
	-- no regard for no_proxy; wsbeat switches that off and applies the
	-- documented rules itself: no_proxy and proxy = false mean direct
	local cases = {
		{ tls = false, env = { no_proxy = "127.0.0.1" }, what = "no_proxy" },
		{ tls = true, env = { NO_PROXY = "localhost,127.0.0.0/8" }, what = "NO_PROXY with a CIDR range" },
		{ tls = false, option = "false", what = "proxy = false" },
		{ tls = true, option = "false", what = "proxy = false" },
	}
	for _, case in ipairs(cases) do
		local scheme = case.tls and "wss" or "ws"
		it(("%s:// with http_proxy, https_proxy and all_proxy set opens directly under %s"):format(scheme, case.what), function()
			local srv, px
			finally(function() H.stop(px, srv) end)
			srv = H.server { tls = case.tls }
			px = fake_proxy()
			local proxy = ("http://127.0.0.1:%d"):format(px.port)
			local env = {
				http_proxy = proxy, HTTP_PROXY = proxy, https_proxy = proxy,
				HTTPS_PROXY = proxy, all_proxy = proxy, ALL_PROXY = proxy,
				ws_proxy = proxy, wss_proxy = proxy,
			}
			for k, v in pairs(case.env or {}) do env[k] = v end
			-- the fake proxy would see the connection (and the client
			-- fail); the server proves the client came directly
			local out = lua_child(([[
local wsbeat = require "wsbeat"
local got
local ws = wsbeat.connect(%q, {
  tls = { ca_file = %q },
  reconnect = false,
  proxy = %s,
  on_state = function(ws, state, info)
    if state == "open" then ws:send("via env?") print("proxy", ws:stats().proxy) end
    if state == "closed" then print("closed", info.cause, info.reason) end
  end,
  on_message = function(ws, data) got = data ws:close() end,
})
wsbeat.run(10)
print("echo", got)
]]):format(srv:url("/echo?envproxy"), H.certs() .. "/ca.pem", case.option or "nil"), env)
			assert.matches("echo\tvia env?", out, 1, true)
			assert.matches("proxy\tnil", out, 1, true)
			assert.matches("closed\tclosed_by_user", out, 1, true)
			assert.matches("rc=0", out, 1, true)
			assert.equal(0, px.connections(), H.read_file(px.log))
			local ev = srv:wait_event("connect", function(e) return e.path == "/echo?envproxy" end)
			assert.is_truthy(ev)
		end)
	end

	it("the fake proxy does record a connection (the check above can fail)", function()
		local px = fake_proxy()
		finally(function() px:stop() end)
		local ws, rec = H.client(("ws://127.0.0.1:%d/"):format(px.port), { reconnect = false })
		H.wait_state(ws, "closed")
		assert.equal("closed", rec.states[#rec.states])
		H.run_until(function() return px.connections() == 1 end, 5, "connection seen by the fake proxy")
		assert.matches("CONNECTION GET / HTTP/1.1", H.read_file(px.log), 1, true)
	end)
end)

describe("the upgrade request", function()
	local srv
	setup(function() srv = H.server {} end)
	teardown(function() H.stop(srv) end)

	it("sends User-Agent: wsbeat/<version> by default", function()
		local ws = H.client(srv:url("/echo?ua=default"), { reconnect = false })
		H.wait_state(ws, "open")
		local ev = srv:wait_event("connect", function(e) return e.path == "/echo?ua=default" end)
		assert.equal("wsbeat/" .. wsbeat._VERSION:match("%d+%.%d+%.%d+"), ev.headers["user-agent"])
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("a User-Agent in headers replaces it, whatever its case", function()
		local ws = H.client(srv:url("/echo?ua=mine"), { reconnect = false, headers = { ["user-agent"] = "mine/2" } })
		H.wait_state(ws, "open")
		local ev = srv:wait_event("connect", function(e) return e.path == "/echo?ua=mine" end)
		assert.equal("mine/2", ev.headers["user-agent"])
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("a headers function that returns nothing still sends the User-Agent", function()
		local ws = H.client(srv:url("/echo?ua=fn"), { reconnect = false, headers = function() return nil end })
		H.wait_state(ws, "open")
		local ev = srv:wait_event("connect", function(e) return e.path == "/echo?ua=fn" end)
		assert.matches("^wsbeat/", ev.headers["user-agent"])
		ws:close()
		H.wait_state(ws, "closed")
	end)
end)

describe("closing", function()
	for _, tls in ipairs { false, true } do
		local scheme = tls and "wss" or "ws"
		describe("over " .. scheme, function()
			local srv
			setup(function() srv = H.server { tls = tls } end)
			teardown(function() H.stop(srv) end)
			local tlsopt = tls and { ca_file = H.certs() .. "/ca.pem" } or nil

			it("delivers messages that arrive after close() and before the server's close", function()
				local order = {}
				local ws, rec = H.client(srv:url("/afterclose/3?cb"), {
					reconnect = false, tls = tlsopt,
					on_message = function(ws, data)
						order[#order + 1] = ws:state() .. ":" .. data
						if data == "last request" then ws:close(1000, "bye") end
					end,
					on_state = function(_, state) order[#order + 1] = state end,
				})
				H.wait_state(ws, "open")
				ws:send("last request")
				H.wait_state(ws, "closed")
				assert.same({ "open", "open:last request", "closing", "closing:late-1", "closing:late-2",
					"closing:late-3", "closed" }, order)
				assert.equal("closed_by_user", rec.infos[#rec.infos].cause)
				local ev = srv:wait_event("close", function(e) return e.reason == "bye" end)
				assert.equal(1000, ev.code)
				assert.equal(3, srv:wait_event("late_sent", function(e) return e.id == ev.id end).count)
				assert.equal(4, ws:stats().messages_received)
			end)

			it("keeps them for receive() too", function()
				local ws = wsbeat.connect(srv:url("/afterclose/2?recv"), { reconnect = false, tls = tlsopt })
				assert.equal("hello", (function()
					ws:send("hello")
					return ws:receive(5)
				end)())
				ws:close(4001, "recv done")
				local got = {}
				for data in ws:messages() do got[#got + 1] = data end
				assert.same({ "late-1", "late-2" }, got)
				assert.equal("closed", ws:state())
				assert.equal(4001, srv:wait_event("close", function(e) return e.reason == "recv done" end).code)
			end)

			it("close(1001) is going away, as the server sees it", function()
				local ws, rec = H.client(srv:url("/echo?goingaway"), { reconnect = false, tls = tlsopt })
				H.wait_state(ws, "open")
				ws:close(1001, "shutting down")
				H.wait_state(ws, "closed")
				assert.equal(1001, rec.infos[#rec.infos].code)
				assert.equal(1001, srv:wait_event("close", function(e) return e.reason == "shutting down" end).code)
			end)

			it("a close() while messages wait in the send buffer sends them first", function()
				local ws = H.client(srv:url("/send/0/0?then=log&flushclose"), { reconnect = false, tls = tlsopt })
				H.wait_state(ws, "open")
				-- 20 KiB each: past the size written at once, so they queue
				for i = 1, 20 do assert(ws:send(("%02d"):format(i) .. ("x"):rep(20478), "binary")) end
				assert.is_true(ws:stats().buffered > 0)
				ws:close(1000, "flushed")
				H.wait_state(ws, "closed")
				local ev = srv:wait_event("close", function(e) return e.reason == "flushed" end)
				assert.equal(1000, ev.code)
				local n = 0
				for _, m in ipairs(srv:events("message")) do
					if m.id == ev.id then
						n = n + 1
						assert.equal(20480, m.len)
					end
				end
				assert.equal(20, n)
			end)
		end)
	end

	it("a server that closes first is answered with its own code, once", function()
		local srv = H.server {}
		finally(function() srv:stop() end)
		local ws, rec = H.client(srv:url("/close/4005?reason=srv"), { reconnect = false })
		H.wait_state(ws, "closed")
		assert.equal("closed_by_peer", rec.infos[#rec.infos].cause)
		assert.equal(4005, rec.infos[#rec.infos].code)
		assert.equal(4005, srv:wait_event("close").code)
	end)
end)

describe("ping() and rtt", function()
	local srv
	setup(function() srv = H.server {} end)
	teardown(function() H.stop(srv) end)

	it("the pong of ping() without a payload sets stats().rtt", function()
		local ws = H.client(srv:url("/echo?rtt1"), { reconnect = false, heartbeat = false })
		H.wait_state(ws, "open")
		assert.is_nil(ws:stats().rtt)
		assert.is_true(ws:ping())
		H.run_until(function() return ws:stats().rtt end, 5, "rtt")
		local rtt = ws:stats().rtt
		assert.is_true(rtt > 0 and rtt < 2 * H.SLOW, tostring(rtt))
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("the pong of ping(payload) sets it too, and a steady stream of messages does not stop it #slow", function()
		local interval = 0.5 * H.SLOW
		local ws = H.client(srv:url("/echo?rtt2"), { reconnect = false, heartbeat = { interval = interval, timeout = 1 } })
		H.wait_state(ws, "open")
		-- a message every 20 ms for three intervals: the heartbeat never
		-- needs a probe (each echo is heard well within the interval)
		local sent = 0
		local t0 = require("wsbeat.core").now()
		local total = math.floor(3 * interval / 0.02)
		H.run_until(function()
			local due = math.floor((require("wsbeat.core").now() - t0) / 0.02)
			while sent < due and sent < total do
				sent = sent + 1
				ws:send("tick")
			end
			return sent >= total
		end, 10 * H.SLOW, "traffic")
		assert.is_nil(ws:stats().rtt, "no probe under steady traffic")
		assert.is_true(ws:ping("mine"))
		H.run_until(function() return ws:stats().rtt end, 5, "rtt from ping(payload)")
		local ev = srv:wait_event("ping", function(e) return e.len == 4 end)
		assert.is_truthy(ev)
		ws:close()
		H.wait_state(ws, "closed")
	end)
end)

describe("reconnect jitter", function()
	it("differs between processes (the random source is seeded)", function()
		-- the first delay of a refused client, jitter 1: anywhere in [0, 10]
		local port, hold = H.refusing_port()
		finally(function() hold:close() end)
		local script = H.tmpdir() .. "/jitter.lua"
		local f = assert(io.open(script, "w"))
		f:write(([[
local wsbeat = require "wsbeat"
local ws = wsbeat.connect("ws://127.0.0.1:%d/", { reconnect = { delay = 10, jitter = 1 },
  on_state = function(ws, st, info) if st == "reconnecting" then print(("%%.17g"):format(info.delay)) ws:close() end end })
wsbeat.run(5)
]]):format(port))
		f:close()
		local delays = {}
		for i = 1, 3 do
			delays[i] = H.sh(("cd %s && LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;' lua5.4 %s")
				:format(q(H.ROOT), q(script))):match("^(%S+)")
			assert.is_truthy(tonumber(delays[i]), tostring(delays[i]))
		end
		-- three equal draws of a 32-bit source would be a 1 in 2^64 chance
		assert.is_false(delays[1] == delays[2] and delays[2] == delays[3], table.concat(delays, " "))
	end)
end)

describe("options that meant nothing", function()
	local function err_of(f)
		local ok, err = pcall(f)
		assert.is_false(ok)
		return err
	end

	it("heartbeat.mode = 'message' needs a message", function()
		assert.matches("option 'heartbeat.message': required with mode = 'message'",
			err_of(function() wsbeat.connect("ws://127.0.0.1:9/", { heartbeat = { mode = "message" } }) end), 1, true)
	end)

	it("reconnect.max_delay below reconnect.delay raises; a delay above the default cap raises the cap", function()
		assert.matches("option 'reconnect.max_delay': must be >= reconnect.delay",
			err_of(function() wsbeat.connect("ws://127.0.0.1:9/", { reconnect = { delay = 5, max_delay = 2 } }) end), 1, true)
		local states = {}
		local ws = wsbeat.connect("ws://127.0.0.1:9/", {
			reconnect = { delay = 40, jitter = 0 },
			on_state = function(_, st, info) states[#states + 1] = { st, info.delay } end,
		})
		H.run_until(function() return #states >= 1 end, 5, "reconnecting")
		assert.same({ "reconnecting", 40 }, states[1])
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("heartbeat = true and reconnect = true mean the defaults; protocols may be one string", function()
		local srv = H.server {}
		finally(function() srv:stop() end)
		local ws = H.client(srv:url("/echo?truthy"), { heartbeat = true, reconnect = true, protocols = "chat" })
		H.wait_state(ws, "open")
		assert.equal("chat", ws:protocol())
		ws:close()
		H.wait_state(ws, "closed")
	end)
end)

describe("attempt numbering", function()
	it("reconnecting and the connecting after it carry the same attempt number, counted from 1", function()
		local seen = {}
		local ws = wsbeat.connect("ws://127.0.0.1:9/", {
			reconnect = { delay = 0.01, max_delay = 0.01, jitter = 0, max_attempts = 3 },
			on_state = function(_, st, info) seen[#seen + 1] = st .. "=" .. tostring(info.attempt) end,
		})
		H.wait_state(ws, "closed")
		assert.same({ "reconnecting=1", "connecting=1", "reconnecting=2", "connecting=2", "closed=3" }, seen)
	end)
end)
