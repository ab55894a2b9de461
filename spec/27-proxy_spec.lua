-- wsbeat through real proxies on loopback (spec/proxies.lua): tinyproxy for
-- HTTP CONNECT, microsocks and dante for SOCKS5, with and without
-- credentials; ws:// and wss:// (verified, by the server's name) echo text
-- and 1 MiB; failures, timeouts, the heartbeat and reconnects through them;
-- and no password in anything wsbeat says.
local H = require "helper"
local q = H.quote
local P = require "proxies"
local wsbeat = require "wsbeat"
local core = require "wsbeat.core"

local SECRET = "s3cret-Zq9" -- must never show up in wsbeat's output
local BIG = 1024 * 1024

-- everything wsbeat said during a test: log lines (debug), reasons,
-- tostring, stats; checked for the password at the end
local said = {}
local function hear(...)
	for i = 1, select("#", ...) do said[#said + 1] = tostring((select(i, ...))) end
end
wsbeat.log(function(level, text) hear(level, text) end, "debug")

local function record(ws, rec)
	hear(tostring(ws))
	for k, v in pairs(ws:stats()) do hear(k, v) end
	for _, info in ipairs(rec.infos) do
		for k, v in pairs(info) do hear(k, v) end
	end
end

local function tls_opts(tls)
	return tls and { ca_file = H.certs() .. "/ca.pem" } or nil
end

-- the server by name over wss (SNI and the certificate check use it)
local function server_url(srv, tls, path)
	if tls then return ("wss://localhost:%d%s"):format(srv.port, path) end
	return srv:url(path)
end

teardown(function()
	P.stop_all()
	for _, s in ipairs(said) do
		assert(not s:find(SECRET, 1, true), "a password in wsbeat's output: " .. s)
	end
end)

local KINDS = {
	{ name = "tinyproxy (HTTP CONNECT)", make = function() return P.tinyproxy {} end, scheme = "http" },
	{ name = "tinyproxy with Basic auth", make = function() return P.tinyproxy { user = "alice", pass = SECRET } end, scheme = "http" },
	{ name = "microsocks socks5h", make = function() return P.microsocks {} end, scheme = "socks5h" },
	{ name = "microsocks socks5 with auth", make = function() return P.microsocks { user = "bob", pass = SECRET } end, scheme = "socks5" },
	-- (tag #root: dante runs as root and its username method reads the shadow file)
	{ name = "dante socks5", make = function() return P.dante {} end, scheme = "socks5", tag = " #root" },
	{ name = "dante socks5h with auth", make = function() return P.dante { auth = true } end, scheme = "socks5h", tag = " #root" },
}

describe("through a proxy", function()
	for _, kind in ipairs(KINDS) do
		for _, tls in ipairs { false, true } do
			local scheme = tls and "wss" or "ws"
			it(("%s:// via %s echoes text and 1 MiB"):format(scheme, kind.name) .. (kind.tag or ""), function()
				local srv, px
				finally(function() H.stop(px, srv) end)
				srv = H.server { tls = tls }
				px = kind.make()
				local got = {}
				local ws, rec = H.client(server_url(srv, tls, "/echo?via"), {
					proxy = px:url { scheme = kind.scheme }, tls = tls_opts(tls), reconnect = false,
					on_message = function(ws, data, kind2)
						got[#got + 1] = { data = data, kind = kind2 }
						if #got == 1 then assert(ws:send(H.big_pattern(3, BIG), "binary")) end
						if #got == 2 then ws:close() end
					end,
				})
				H.wait_state(ws, "open", 10)
				assert.equal(("%s://127.0.0.1:%d"):format(kind.scheme, px.port), ws:stats().proxy)
				assert(ws:send("hello through " .. kind.name))
				H.wait_state(ws, "closed", 20)
				record(ws, rec)
				assert.equal("closed_by_user", rec.infos[#rec.infos].cause)
				assert.equal(2, #got)
				assert.equal("hello through " .. kind.name, got[1].data)
				assert.equal("binary", got[2].kind)
				assert.is_true(got[2].data == H.big_pattern(3, BIG), "1 MiB echo differs")
				-- the proxy carried it: its log has the tunnel, to the server
				-- by name where the proxy resolves (CONNECT, socks5h)
				local tunnels = px:wait_connections(1)
				local target = tunnels[#tunnels].target
				if kind.scheme == "socks5" or px.kind == "dante" then
					assert.equal("127.0.0.1:" .. srv.port, target)
				else
					assert.equal((tls and "localhost:" or "127.0.0.1:") .. srv.port, target)
				end
				assert.equal(1000, srv:wait_event("close").code)
			end)
		end
	end
end)

describe("proxy failures", function()
	it("HTTP 407 without credentials: proxy_auth, not retried, status 407", function()
		local srv, px
		finally(function() H.stop(px, srv) end)
		srv = H.server {}
		px = P.tinyproxy { user = "alice", pass = SECRET }
		local ws, rec = H.client(srv:url("/echo?407"), {
			proxy = px:url { auth = false }, reconnect = { delay = 0.01, jitter = 0 },
		})
		H.wait_state(ws, "closed", 10)
		record(ws, rec)
		assert.same({ "closed" }, rec.states)
		local info = rec.infos[1]
		assert.equal("proxy_auth", info.cause)
		assert.equal(407, info.status)
		assert.matches("127.0.0.1:" .. px.port, info.reason, 1, true)
	end)

	it("wrong HTTP credentials: proxy_auth, the reason names the proxy, never the password", function()
		local srv, px
		finally(function() H.stop(px, srv) end)
		srv = H.server {}
		px = P.tinyproxy { user = "alice", pass = "right-one" }
		local ws, rec = H.client(srv:url("/echo?401"), {
			proxy = px:url { pass = SECRET }, reconnect = { delay = 0.01, jitter = 0 },
		})
		H.wait_state(ws, "closed", 10)
		record(ws, rec)
		assert.same({ "closed" }, rec.states)
		assert.equal("proxy_auth", rec.infos[1].cause)
		assert.matches("the proxy http://127.0.0.1:" .. px.port .. " wants other credentials", rec.infos[1].reason, 1, true)
	end)

	for _, case in ipairs {
		{ "microsocks", function() return P.microsocks { user = "bob", pass = "right-one" } end },
		{ "dante", function() return P.dante { auth = true } end, " #root" },
	} do
		it(case[1] .. ": SOCKS5 credentials refused or missing: proxy_auth, not retried" .. (case[3] or ""), function()
			local srv, px
			finally(function() H.stop(px, srv) end)
			srv = H.server {}
			px = case[2]()
			for _, url in ipairs { px:url { pass = SECRET }, px:url { auth = false } } do
				local ws, rec = H.client(srv:url("/echo?socksauth"), {
					proxy = url, reconnect = { delay = 0.01, jitter = 0 },
				})
				H.wait_state(ws, "closed", 10)
				record(ws, rec)
				assert.same({ "closed" }, rec.states)
				assert.equal("proxy_auth", rec.infos[1].cause)
				assert.matches("127.0.0.1:" .. px.port, rec.infos[1].reason, 1, true)
			end
		end)
	end

	it("a proxy that is down: cause proxy, retried, and open once it is back", function()
		local srv, px, again
		finally(function() H.stop(again, px, srv) end)
		srv = H.server {}
		px = P.microsocks {}
		local port = px.port
		px:stop()
		local ws, rec = H.client(srv:url("/echo?back"), {
			proxy = ("socks5h://127.0.0.1:%d"):format(port),
			reconnect = { delay = 0.05, max_delay = 0.1, jitter = 0 },
		})
		H.run_until(function() return #rec.states >= 3 end, 10, "three failed attempts")
		for i = 1, 3, 2 do
			assert.equal("reconnecting", rec.states[i])
			assert.equal("proxy", rec.infos[i].cause)
			assert.matches("cannot reach the proxy socks5h://127.0.0.1:" .. port, rec.infos[i].reason, 1, true)
		end
		again = P.microsocks { port = port }
		H.wait_state(ws, "open", 10)
		assert.equal(1, #again:wait_connections(1))
		ws:close()
		H.wait_state(ws, "closed")
		record(ws, rec)
	end)

	it("a proxy that refuses the tunnel (target not allowed): cause proxy with the HTTP status, retried", function()
		local srv, px
		finally(function() H.stop(px, srv) end)
		srv = H.server {}
		px = P.tinyproxy { hosts = { "^nothing$" } }
		local ws, rec = H.client(srv:url("/echo?denied"), {
			proxy = px:url(), reconnect = { delay = 0.05, jitter = 0, max_attempts = 2 },
		})
		H.wait_state(ws, "closed", 10)
		record(ws, rec)
		assert.same({ "reconnecting", "connecting", "closed" }, rec.states)
		assert.equal("proxy", rec.infos[1].cause)
		assert.is_true(rec.infos[1].status >= 400, tostring(rec.infos[1].status))
		assert.matches("refused the tunnel %(HTTP %d+", rec.infos[1].reason)
		assert.equal("gave_up", rec.infos[3].cause)
	end)

	it("a proxy that is not one (an echo server's HTTP answer): cause proxy", function()
		local srv = H.server {}
		finally(function() srv:stop() end)
		local ws, rec = H.client("ws://127.0.0.1:9/never", {
			proxy = ("http://127.0.0.1:%d"):format(srv.port), reconnect = false,
		})
		H.wait_state(ws, "closed", 10)
		record(ws, rec)
		assert.equal("proxy", rec.infos[1].cause)
	end)

	it("https:// proxies and bad proxy URLs raise from connect(), naming the option", function()
		assert.has_error(function() wsbeat.connect("ws://127.0.0.1:9/", { proxy = "https://p:1" }) end)
		local ok, err = pcall(wsbeat.connect, "ws://127.0.0.1:9/", { proxy = "ftp://p:1" })
		assert.is_false(ok)
		assert.matches("bad argument #2 to 'connect' (option 'proxy': unsupported proxy scheme 'ftp'", err, 1, true)
		ok, err = pcall(wsbeat.connect, "ws://127.0.0.1:9/", { proxy = "https://p:1" })
		assert.is_false(ok)
		assert.matches("option 'proxy': https:// proxies (TLS to the proxy) are not supported", err, 1, true)
	end)
end)

describe("timeouts and the heartbeat through a proxy", function()
	it("a proxy frozen before the tunnel: connect_timeout, then open after SIGCONT #slow", function()
		local srv, px
		finally(function() H.stop(px, srv) end)
		srv = H.server {}
		px = P.tinyproxy {}
		px:signal("STOP")
		local t0 = core.now()
		local ws, rec = H.client(srv:url("/echo?frozenproxy"), {
			proxy = px:url(), connect_timeout = 0.5, reconnect = { delay = 0.05, max_delay = 0.05, jitter = 0 },
		})
		H.run_until(function() return rec.states[1] end, 5, "first failure")
		local took = core.now() - t0
		assert.equal("reconnecting", rec.states[1])
		assert.equal("connect_timeout", rec.infos[1].cause)
		-- (the engine's timers count a deadline less than 0.5 ms away as
		-- reached, src/heartbeat.c on_timer: a CI run saw 0.49998)
		assert.is_true(took >= 0.5 - 0.0005 and took < 0.5 + 1.5 * H.SLOW, tostring(took))
		px:signal("CONT")
		H.wait_state(ws, "open", 10)
		ws:close()
		H.wait_state(ws, "closed")
		record(ws, rec)
	end)

	it("a proxy frozen after the tunnel: heartbeat_timeout within interval + timeout #slow", function()
		local srv, px
		finally(function() H.stop(px, srv) end)
		srv = H.server {}
		px = P.microsocks {}
		local ws, rec = H.client(srv:url("/echo?frozenlater"), {
			proxy = px:url { scheme = "socks5h" }, heartbeat = { interval = 0.2, timeout = 0.3 },
			reconnect = false,
		})
		H.wait_state(ws, "open", 10)
		H.run_until(function() return ws:stats().rtt end, 5, "a probe answered through the proxy")
		px:signal("STOP")
		local last = core.now()
		H.wait_state(ws, "closed", 10)
		local took = core.now() - last
		record(ws, rec)
		assert.equal("heartbeat_timeout", rec.infos[#rec.infos].cause)
		assert.is_true(took <= 0.5 + 0.5 * H.SLOW, tostring(took))
	end)

	it("the server frozen behind a live proxy: detected within interval + timeout, and back through the proxy #slow", function()
		local srv, px
		finally(function() H.stop(px, srv) end)
		srv = H.server {}
		px = P.tinyproxy {}
		local opened = 0
		local ws, rec = H.client(srv:url("/echo?frozenserver"), {
			proxy = px:url(), heartbeat = { interval = 0.2, timeout = 0.3 },
			connect_timeout = 0.5, reconnect = { delay = 0.05, max_delay = 0.2, jitter = 0 },
			on_state = function(_, st) if st == "open" then opened = opened + 1 end end,
		})
		H.wait_state(ws, "open", 10)
		srv:signal("STOP")
		local t0 = core.now()
		H.run_until(function() return rec.states[#rec.states] ~= "open" end, 5, "detection")
		local took = core.now() - t0
		assert.equal("reconnecting", rec.states[#rec.states])
		assert.equal("heartbeat_timeout", rec.infos[#rec.infos].cause)
		assert.is_true(took <= 0.5 + 0.5 * H.SLOW, tostring(took))
		srv:signal("CONT")
		H.run_until(function() return opened >= 2 end, 10, "open again")
		assert.is_true(#px:connections() >= 2)
		ws:close()
		H.wait_state(ws, "closed")
		record(ws, rec)
	end)
end)

describe("the proxy environment", function()
	local function child(script, env)
		local path = H.tmpdir() .. "/proxy-child.lua"
		local f = assert(io.open(path, "w"))
		f:write(script)
		f:close()
		local vars = {}
		for k, v in pairs(env) do vars[#vars + 1] = q(k .. "=" .. v) end
		return H.sh(("cd %s && env -u http_proxy -u https_proxy -u all_proxy -u no_proxy %s "
			.. "LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;' timeout 30 lua5.4 %s 2>&1; echo rc=$?")
			:format(q(H.ROOT), table.concat(vars, " "), q(path)))
	end
	local SCRIPT = [[
local wsbeat = require "wsbeat"
local ws = wsbeat.connect(%q, { tls = { ca_file = %q }, reconnect = false,
  on_state = function(ws, st, info)
    if st == "open" then print("proxy", ws:stats().proxy) ws:send("env") end
    if st == "closed" then print("closed", info.cause) end
  end,
  on_message = function(ws, d) print("echo", d) ws:close() end })
wsbeat.run(10)
]]

	for _, case in ipairs {
		{ tls = false, var = "http_proxy" }, { tls = false, var = "ws_proxy" }, { tls = false, var = "ALL_PROXY" },
		{ tls = true, var = "https_proxy" }, { tls = true, var = "WSS_PROXY" },
	} do
		it(("%s carries a %s:// connection"):format(case.var, case.tls and "wss" or "ws"), function()
			local srv, px
			finally(function() H.stop(px, srv) end)
			srv = H.server { tls = case.tls }
			px = P.tinyproxy {}
			local out = child(SCRIPT:format(server_url(srv, case.tls, "/echo?env"), H.certs() .. "/ca.pem"),
				{ [case.var] = px:url() })
			assert.matches("proxy\thttp://127.0.0.1:" .. px.port, out, 1, true)
			assert.matches("echo\tenv", out, 1, true)
			assert.matches("closed\tclosed_by_user", out, 1, true)
			assert.equal(1, #px:wait_connections(1))
		end)
	end

	it("a proxy variable that is not a URL raises from connect(), naming it", function()
		local out = child([[
local wsbeat = require "wsbeat"
print(pcall(wsbeat.connect, "ws://127.0.0.1:9/"))
]], { http_proxy = "gopher://x:1" })
		assert.matches("false\t", out, 1, true)
		assert.matches("proxy from the environment: http_proxy: unsupported proxy scheme 'gopher'", out, 1, true)
	end)
end)

describe("the proxy option as a function", function()
	it("is called before every attempt and may pick another proxy", function()
		local srv, a, b
		finally(function() H.stop(a, b, srv) end)
		srv = H.server {}
		a, b = P.microsocks {}, P.tinyproxy {}
		local calls = 0
		local ws, rec = H.client(srv:url("/reset/fnproxy"), {
			proxy = function() calls = calls + 1 return calls == 1 and a:url { scheme = "socks5h" } or b:url() end,
			reconnect = { delay = 0.05, jitter = 0 },
		})
		H.run_until(function() return #rec.states >= 4 end, 10, "open, lost, open again")
		assert.same({ "open", "reconnecting", "connecting", "open" }, { H.unpack(rec.states, 1, 4) })
		assert.equal(2, calls)
		assert.equal("http://127.0.0.1:" .. b.port, ws:stats().proxy)
		assert.equal(1, #a:connections())
		assert.equal(1, #b:wait_connections(1))
		ws:close()
		H.wait_state(ws, "closed")
		record(ws, rec)
	end)
end)

describe("the CLI", function()
	it("--proxy goes through the proxy, names it without the password, and --no-proxy does not #slow", function()
		local srv, px
		finally(function() H.stop(px, srv) end)
		srv = H.server {}
		px = P.tinyproxy { user = "alice", pass = SECRET }
		local cmd = "cd %s && echo cli-hello | %s bin/wsbeat %s %s 2>&1; echo rc=$?"
		local out = H.sh(cmd:format(q(H.ROOT), "", "--proxy " .. q(px:url()), q(srv:url("/echo?cli"))))
		assert.matches("cli-hello", out, 1, true)
		assert.matches("through the proxy http://127.0.0.1:" .. px.port, out, 1, true)
		assert.matches("rc=0", out, 1, true)
		assert.is_nil(out:find(SECRET, 1, true))
		assert.equal(1, #px:wait_connections(1))
		out = H.sh(cmd:format(q(H.ROOT), "http_proxy=" .. q(px:url()), "--no-proxy", q(srv:url("/echo?cli2"))))
		assert.matches("cli-hello", out, 1, true)
		assert.matches("rc=0", out, 1, true)
		assert.equal(1, #px:connections())
		-- wrong credentials: exit 1, cause proxy_auth, no password shown
		out = H.sh(cmd:format(q(H.ROOT), "", "--proxy " .. q(px:url { pass = "wrong-" .. SECRET }), q(srv:url("/echo?cli3"))))
		assert.matches("rc=1", out, 1, true)
		assert.matches("wants other credentials", out, 1, true)
		assert.is_nil(out:find(SECRET, 1, true))
	end)
end)
