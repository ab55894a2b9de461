-- The proxy fixtures (spec/proxies.lua) work with a client that is not
-- wsbeat: curl through tinyproxy (HTTP CONNECT), microsocks and dante
-- (SOCKS5, socks5 and socks5h), with and without credentials, to the python
-- test server, which answers a plain GET /status/200 with "status 200" and
-- logs a "rejected" event for it. Wrong credentials are refused with curl's
-- error; the proxies' logs show the tunnels.
local H = require "helper"
local P = require "proxies"

local CURL_TIMEOUT = 10 * H.SLOW
local q = H.quote

-- curl with proxy environment variables out of the way (--noproxy '' also
-- overrides NO_PROXY); args: a string of curl arguments, each quoted.
-- Returns { rc, code, connect, body, err, verbose }.
local ncurl = 0
local function curl(args)
	ncurl = ncurl + 1
	local base = ("%s/curl-%d"):format(H.tmpdir(), ncurl)
	local cmd = ("env -u http_proxy -u https_proxy -u HTTPS_PROXY -u ALL_PROXY -u all_proxy -u NO_PROXY -u no_proxy "
		.. "curl -sSv --noproxy '' --max-time %d -o %s -w '%%{http_code} %%{http_connect}' %s 2>%s; echo \" $?\"")
		:format(CURL_TIMEOUT, q(base .. ".body"), args, q(base .. ".err"))
	local out = H.sh(cmd)
	local code, connect, rc = out:match("^(%d+) (%d+) (%d+)%s*$")
	assert(rc, "curl output: " .. out)
	local verbose = H.read_file(base .. ".err") or ""
	local err = {}
	for line in verbose:gmatch("[^\n]+") do
		if line:match("^curl: ") then err[#err + 1] = line end
	end
	return {
		rc = tonumber(rc), code = tonumber(code), connect = tonumber(connect),
		body = H.read_file(base .. ".body") or "", err = table.concat(err, "\n"), verbose = verbose,
	}
end

local function show(r)
	return ("rc=%d code=%d connect=%d err=%s"):format(r.rc, r.code, r.connect, r.err)
end


describe("proxy fixtures, checked with curl", function()
	local srv, target, path
	local n = 0
	setup(function()
		srv = H.server {}
		target = "127.0.0.1:" .. srv.port
	end)
	teardown(function()
		P.stop_all()
		H.stop(srv)
	end)
	before_each(function()
		n = n + 1
		path = "/status/200?n=" .. n -- lets each test find its own request
	end)

	-- the request reached the server, with the path this test sent
	local function assert_served(r, host)
		assert.equal(0, r.rc, show(r))
		assert.equal(200, r.code, show(r))
		assert.equal("status 200\n", r.body)
		local ev = srv:wait_event("rejected", function(e) return e.path == path end, 5)
		assert.equal(200, ev.status)
		if host then assert.equal(host .. ":" .. srv.port, ev.headers.Host or ev.headers.host) end
	end

	local function assert_nothing_served()
		for _, e in ipairs(srv:events("rejected")) do
			assert.are_not.equal(path, e.path)
		end
	end

	describe("tinyproxy", function()
		it("tunnels with CONNECT and proxies a plain GET without auth", function()
			local px = P.tinyproxy()
			finally(function() px:stop() end)
			assert.equal("http://127.0.0.1:" .. px.port, px:url())
			local r = curl(("-p -x %s %s"):format(q(px:url()), q("http://" .. target .. path)))
			assert_served(r, "127.0.0.1")
			assert.equal(200, r.connect)
			local list = px:wait_connections(1)
			assert.same({ method = "CONNECT", target = target }, list[1])
			assert.truthy(px:log():find("Request %(file descriptor %d+%): CONNECT " .. target:gsub("%.", "%%.")))

			-- a host name: tinyproxy resolves it
			path = path .. "&host=localhost"
			r = curl(("-p -x %s %s"):format(q(px:url()), q("http://localhost:" .. srv.port .. path)))
			assert_served(r, "localhost")
			list = px:wait_connections(2)
			assert.same({ method = "CONNECT", target = "localhost:" .. srv.port }, list[2])

			-- no -p: a proxied GET, not a tunnel
			path = path .. "&plain=1"
			r = curl(("-x %s %s"):format(q(px:url()), q("http://" .. target .. path)))
			assert_served(r)
			list = px:wait_connections(3)
			assert.same({ method = "GET", target = target }, list[3])
		end)

		it("refuses destinations off loopback without connecting", function()
			local px = P.tinyproxy()
			finally(function() px:stop() end)
			-- 0.0.0.0 would reach this machine, but the host filter allows 127/8 and localhost only
			local r = curl(("-p -x %s %s"):format(q(px:url()), q("http://0.0.0.0:" .. srv.port .. path)))
			assert.equal(56, r.rc, show(r))
			assert.equal(403, r.connect)
			assert.equal(0, #px:connections())
			assert.truthy(px:log():find('Proxying refused on filtered domain "0.0.0.0"', 1, true))
			assert_nothing_served()
		end)

		it("with BasicAuth: right credentials tunnel; none get 407, wrong ones 401", function()
			local px = P.tinyproxy { user = "alice", pass = "s3cret" }
			finally(function() px:stop() end)
			assert.equal("http://alice:s3cret@127.0.0.1:" .. px.port, px:url())
			local r = curl(("-p -x %s %s"):format(q(px:url()), q("http://" .. target .. path)))
			assert_served(r)
			assert.equal(200, r.connect)
			assert.equal(1, #px:wait_connections(1))

			r = curl(("-p -x %s %s"):format(q(px:url { auth = false }), q("http://" .. target .. path)))
			assert.equal(56, r.rc, show(r))
			assert.equal(407, r.connect)
			assert.matches("CONNECT tunnel failed, response 407", r.err, 1, true)
			assert.matches("Proxy%-Authenticate: Basic", r.verbose)

			-- tinyproxy 1.11 answers wrong credentials with 401, not 407
			r = curl(("-p -x %s %s"):format(q(px:url { pass = "wrong" }), q("http://" .. target .. path)))
			assert.equal(56, r.rc, show(r))
			assert.equal(401, r.connect)
			assert.matches("CONNECT tunnel failed, response 401", r.err, 1, true)

			assert.equal(1, #px:connections())
			local served = 0
			for _, e in ipairs(srv:events("rejected")) do
				if e.path == path then served = served + 1 end
			end
			assert.equal(1, served)
		end)
	end)

	describe("microsocks", function()
		it("tunnels socks5 (client resolves) and socks5h (proxy resolves) without auth", function()
			local px = P.microsocks()
			finally(function() px:stop() end)
			assert.equal("socks5://127.0.0.1:" .. px.port, px:url())
			local r = curl(("-x %s %s"):format(q(px:url()), q("http://localhost:" .. srv.port .. path)))
			assert_served(r, "localhost")
			assert.matches("SOCKS5 connect to IPv4 " .. target .. " (locally resolved)", r.verbose, 1, true)
			local list = px:wait_connections(1)
			assert.same({ client = "127.0.0.1", target = target }, list[1])

			path = path .. "&h=1"
			r = curl(("-x %s %s"):format(q(px:url { scheme = "socks5h" }), q("http://localhost:" .. srv.port .. path)))
			assert_served(r, "localhost")
			assert.matches("SOCKS5 connect to localhost:" .. srv.port .. " (remotely resolved)", r.verbose, 1, true)
			list = px:wait_connections(2)
			-- the name reached the proxy
			assert.same({ client = "127.0.0.1", target = "localhost:" .. srv.port }, list[2])
		end)

		it("with -u/-P: right credentials tunnel, wrong or none are refused", function()
			local px = P.microsocks { user = "bob", pass = "pa:ss@1" }
			finally(function() px:stop() end)
			assert.equal("socks5://bob:pa%3Ass%401@127.0.0.1:" .. px.port, px:url())
			local r = curl(("--socks5-hostname %s -U %s %s"):format(q(px:address()), q("bob:pa:ss@1"),
				q("http://localhost:" .. srv.port .. path)))
			assert_served(r)
			r = curl(("-x %s %s"):format(q(px:url { scheme = "socks5h" }), q("http://localhost:" .. srv.port .. path)))
			assert_served(r)
			assert.equal(2, #px:wait_connections(2))

			r = curl(("-x %s %s"):format(q(px:url { pass = "wrong" }), q("http://" .. target .. path)))
			assert.equal(97, r.rc, show(r))
			assert.matches("User was rejected by the SOCKS5 server", r.err, 1, true)

			r = curl(("-x %s %s"):format(q(px:url { auth = false }), q("http://" .. target .. path)))
			assert.equal(97, r.rc, show(r))
			assert.matches("No authentication method was acceptable", r.err, 1, true)
			assert.equal(2, #px:connections())
		end)
	end)

	-- #root: dante runs as root (user.privileged) and its username method
	-- reads the shadow file
	describe("dante #root", function()
		it("tunnels socks5 and socks5h without auth", function()
			local px = P.dante()
			finally(function() px:stop() end)
			assert.equal("socks5://127.0.0.1:" .. px.port, px:url())
			local r = curl(("--socks5 %s %s"):format(q(px:address()), q("http://" .. target .. path)))
			assert_served(r)
			local list = px:wait_connections(1)
			assert.same({ client = "127.0.0.1", target = target }, list[1])

			path = path .. "&h=1"
			r = curl(("-x %s %s"):format(q(px:url { scheme = "socks5h" }), q("http://localhost:" .. srv.port .. path)))
			assert_served(r, "localhost")
			assert.matches("SOCKS5 connect to localhost:" .. srv.port .. " (remotely resolved)", r.verbose, 1, true)
			-- dante logs the address it connected to
			list = px:wait_connections(2)
			assert.same({ client = "127.0.0.1", target = target }, list[2])
		end)

		it("refuses destinations off loopback", function()
			local px = P.dante()
			finally(function() px:stop() end)
			local r = curl(("--socks5 %s %s"):format(q(px:address()), q("http://0.0.0.0:" .. srv.port .. path)))
			assert.equal(97, r.rc, show(r))
			assert.equal(0, #px:connections())
			assert_nothing_served()
		end)

		it("with the username method: the system account tunnels, wrong or no credentials are refused", function()
			local px = P.dante { auth = true }
			finally(function() px:stop() end)
			assert.equal(("socks5://%s:%s@127.0.0.1:%d"):format(P.DANTE_USER, P.DANTE_PASS, px.port), px:url())
			local r = curl(("-x %s %s"):format(q(px:url()), q("http://" .. target .. path)))
			assert_served(r)
			r = curl(("-x %s %s"):format(q(px:url { scheme = "socks5h" }), q("http://localhost:" .. srv.port .. path)))
			assert_served(r)
			local list = px:wait_connections(2)
			assert.equal(P.DANTE_USER, list[1].user)
			assert.equal(P.DANTE_USER, list[2].user)

			r = curl(("-x %s %s"):format(q(px:url { pass = "wrong" }), q("http://" .. target .. path)))
			assert.equal(97, r.rc, show(r))
			assert.matches("User was rejected by the SOCKS5 server", r.err, 1, true)
			P.wait_for(function()
				return px:log():find('system password authentication failed for user "' .. P.DANTE_USER .. '"', 1, true)
			end, 5, "dante's auth failure line")

			r = curl(("-x %s %s"):format(q(px:url { auth = false }), q("http://" .. target .. path)))
			assert.equal(97, r.rc, show(r))
			assert.matches("No authentication method was acceptable", r.err, 1, true)
			assert.equal(2, #px:connections())
		end)
	end)

	describe("control", function()
		for _, kind in ipairs { "tinyproxy", "microsocks", "dante" } do
			it(kind .. ": SIGSTOP freezes it, SIGCONT resumes, stop() ends every process #slow" .. (kind == "dante" and " #root" or ""), function()
				local px = P[kind]()
				finally(function() px:stop() end)
				local opt = kind == "tinyproxy" and "-p -x" or "-x"
				px:signal("STOP")
				-- frozen: the kernel accepts, nobody answers; curl's own deadline ends it
				local r = H.sh(("curl -sS --noproxy '' --max-time 1 %s %s %s -o /dev/null 2>&1; echo \" $?\"")
					:format(opt, q(px:url()), q("http://" .. target .. path)))
				assert.matches(" 28%s*$", r)
				px:signal("CONT")
				r = curl(("%s %s %s"):format(opt, q(px:url()), q("http://" .. target .. path)))
				assert_served(r)

				local port = px.port
				assert.is_true(#px:processes() >= (kind == "dante" and 2 or 1))
				px:stop()
				assert.is_false(px:alive())
				assert.same({}, px:processes())
				r = curl(("%s %s %s"):format(opt, q("http://127.0.0.1:" .. port), q("http://" .. target .. path)))
				assert.equal(7, r.rc, show(r))
			end)
		end

		it("picks another port when the chosen one was taken before the proxy bound it #root", function()
			local socket = require "socket"
			local holder = assert(socket.bind("127.0.0.1", 0))
			local _, taken = holder:getsockname()
			taken = tonumber(taken)
			local real, calls = P.free_port, 0
			P.free_port = function()
				calls = calls + 1
				if calls == 1 then return taken end
				return real()
			end
			local px, px2
			finally(function()
				P.free_port = real
				holder:close()
				if px then px:stop() end
				if px2 then px2:stop() end
			end)
			px = P.tinyproxy()
			assert.equal(2, calls)
			assert.are_not.equal(taken, px.port)
			calls = 0
			px2 = P.dante()
			assert.equal(2, calls)
			assert.are_not.equal(taken, px2.port)
		end)
	end)
end)
