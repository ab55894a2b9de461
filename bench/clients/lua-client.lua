#!/usr/bin/env lua5.4
--[[ Echo benchmark client for the Lua clients, one client per process.

  lua5.4 bench/clients/lua-client.lua CLIENT URL SIZE N K W [CAFILE]
  luajit bench/clients/lua-client.lua wsbeat URL SIZE N K W [CAFILE]
    CLIENT  wsbeat       event-driven: the callbacks send the next message
                         (or refill the window); wsbeat.run() is the loop
            wsbeat-recv  no callback: ws:receive() on the main thread
            lua-http     http.websocket (lua-http on cqueues)
    URL     ws://... or wss://... (wss trusts CAFILE)
    SIZE    bytes per message (text, ASCII)
    N       round trips for the latency test, one in flight (0 = skip),
            after a warm-up of min(200, N)
    K       messages for the pipelined test, at most W unanswered (0 = skip)
    W       window for the pipelined test

  Under LuaJIT (2.1) every client reports itself as "<name>-jit"
  (bench.sh's wsbeat-jit), and wsbeat loads the core from build-jit/
  (make all LUA_VERSION=jit); lua-http runs there when cqueues and luaossl
  are installed for 5.1 (Debian installs them for 5.1-5.4). The file keeps
  to what 5.1 parses: no <close>, //, bitwise operators, utf8 or math.type.

  Prints one line:
    RESULT client=CLIENT size=SIZE p50_us=.. p99_us=.. msg_s=..
  ("-" for a test that was skipped). Exit status 1 on any failure.

  lua5.4 bench/clients/lua-client.lua versions
    One line of library versions.

The same command line is implemented by lws-client.c, node-client.js and
python-client.py, so bench/bench.sh treats every client alike.
]]

local ROOT = ((arg and arg[0] or "./x/lua-client.lua"):match("^(.*)/[^/]*/[^/]*$") or ".") .. "/.."
-- WSBEAT_ROOT: load wsbeat from another checkout (bench.sh BEFORE=rev), and
-- report it as client "<name>-before"
local WSBEAT_ROOT = os.getenv("WSBEAT_ROOT") or ROOT
local SUFFIX = os.getenv("WSBEAT_ROOT") and "-before" or ""
-- LuaJIT: its own build of the core, and "-jit" on the client's name
local JIT = rawget(_G, "jit")
local BUILD = JIT and "build-jit" or "build"
if JIT then SUFFIX = SUFFIX .. "-jit" end

-- math.tointeger is 5.3+; before it a number is integral by value
local tointeger = math.tointeger or function(x)
	if type(x) == "number" and x == math.floor(x) then return x end
	return nil
end

local function fail(fmt, ...)
	io.stderr:write("lua-client: ", fmt:format(...), "\n")
	os.exit(1)
end

-- Message i: the index in the first 10 bytes, then filler, SIZE bytes in all.
-- (The filler is built once: string.rep copies one byte at a time, which
-- cost more than the round trip of a 4 KiB message.)
local fillers = {}
local function message(size, i)
	local head = ("%010d"):format(i % 10000000000)
	if size <= #head then return head:sub(-size) end
	local fill = fillers[size]
	if not fill then
		fill = ("x"):rep(size - #head)
		fillers[size] = fill
	end
	return head .. fill
end

-- Warm-up round trips before the timed ones (2 before a pipelined-only run).
local function warmups(N, K)
	if N == 0 and K > 0 then return 2 end
	return math.min(200, N)
end

-- The latency test of a blocking client: roundtrip(i) sends message i and
-- waits for its echo; returns the N timed durations.
local function timed_roundtrips(roundtrip, N, K, now)
	for i = 1, warmups(N, K) do roundtrip(i) end
	local lat = {}
	for i = 1, N do
		local t0 = now()
		roundtrip(i)
		lat[i] = now() - t0
	end
	return lat
end

local function percentile(sorted, p)
	local i = math.ceil(p * #sorted)
	if i < 1 then i = 1 end
	return sorted[i]
end

local function report(client, size, lat, K, secs)
	local p50, p99, rate = "-", "-", "-"
	if #lat > 0 then
		table.sort(lat)
		p50 = ("%.1f"):format(percentile(lat, 0.50) * 1e6)
		p99 = ("%.1f"):format(percentile(lat, 0.99) * 1e6)
	end
	if K > 0 then rate = ("%.0f"):format(K / secs) end
	io.write(("RESULT client=%s size=%d p50_us=%s p99_us=%s msg_s=%s\n"):format(client, size, p50, p99, rate))
	io.flush()
end

------------------------------------------------------------------ wsbeat

local function load_wsbeat()
	package.path = WSBEAT_ROOT .. "/lua/?.lua;" .. WSBEAT_ROOT .. "/lua/?/init.lua;" .. package.path
	package.cpath = WSBEAT_ROOT .. "/" .. BUILD .. "/?.so;" .. package.cpath
	return require "wsbeat", require "wsbeat.core"
end

local function wsbeat_opts(url, size, W, ca)
	local o = {
		heartbeat = false, reconnect = false,
		-- room for the whole window: the pipelined test must not be limited
		-- by the default 1 MiB of buffered output
		send_buffer = math.max(1048576, 2 * W * size), -- 1 MiB
		tls = url:match("^wss:") and { ca_file = ca } or nil,
	}
	-- WSBEAT_BENCH_PROXY: through this proxy (bench/proxy.lua); unset for
	-- the other benchmarks (a wsbeat-before may not know the option)
	o.proxy = os.getenv("WSBEAT_BENCH_PROXY")
	return o
end

-- Event-driven, as a wsbeat program is meant to be written: the callbacks
-- drive the test (each echo sends the next message, or refills the window)
-- and wsbeat.run() is the loop.
local function bench_wsbeat(url, size, N, K, W, ca)
	local wsbeat, core = load_wsbeat()
	local now = core.now
	local warm = warmups(N, K)
	local lat, bad = {}, nil
	local phase, i, t0 = "warm", 0, 0    -- warm-up / latency round trips
	local sent, received, tstart, t = 0, 0, 0, 0 -- pipelined
	local m0 = message(size, 0)
	local ws, cur -- cur: the message in flight, as the other clients keep it

	local function next_roundtrip()
		i = i + 1
		cur = message(size, i)
		t0 = now()
		assert(ws:send(cur))
	end
	local function refill()
		while sent < K and sent - received < W do
			local ok, err = ws:send(m0)
			if not ok then
				if err == "send buffer full" then return end
				error("send: " .. tostring(err))
			end
			sent = sent + 1
		end
	end
	local function start_phase()
		if phase == "warm" and i >= warm then phase, i = "lat", 0 end
		if phase == "lat" and i >= N then
			phase = "thr"
			if K == 0 then phase = "done"; ws:close(); return end
			tstart = now()
			refill()
			return
		end
		next_roundtrip()
	end
	local o = wsbeat_opts(url, size, W, ca)
	o.on_state = function(w, st, info)
		if st == "open" then
			ws = w
			start_phase()
		elseif st == "closed" and phase ~= "done" then
			bad = bad or ("closed: " .. tostring(info.reason))
		end
	end
	o.on_message = function(_, data)
		if phase == "thr" then
			if #data ~= size then bad = bad or ("echo of length " .. #data) end
			received = received + 1
			if received == K then
				t = now() - tstart
				phase = "done"
				ws:close()
			else
				refill()
			end
			return
		end
		if data ~= cur then bad = bad or ("echo " .. i .. " differs") end
		if phase == "lat" then lat[i] = now() - t0 end
		start_phase()
	end
	o.on_error = function(_, err) bad = bad or err end
	wsbeat.connect(url, o)
	local finished = wsbeat.run(120)
	if bad then fail("wsbeat: %s", bad) end
	if not finished or phase ~= "done" then fail("wsbeat: did not finish (%s)", phase) end
	report("wsbeat" .. SUFFIX, size, lat, K, t)
end

-- No callback: the coroutine-friendly receive() on the main thread.
local function bench_wsbeat_recv(url, size, N, K, W, ca)
	local wsbeat, core = load_wsbeat()
	local now = core.now
	local ws = wsbeat.connect(url, wsbeat_opts(url, size, W, ca))
	local deadline = now() + 10
	while ws:state() ~= "open" do
		if ws:state() == "closed" then fail("wsbeat-recv: connection failed") end
		if now() > deadline then fail("wsbeat-recv: connect timeout") end
		core.wait(0.5); wsbeat.step()
	end
	local receive = ws.receive

	local function roundtrip(i)
		local m = message(size, i)
		assert(ws:send(m))
		local data, kind = receive(ws, 10)
		if data ~= m then fail("wsbeat-recv: bad echo %d: %s", i, tostring(kind)) end
	end
	local lat = timed_roundtrips(roundtrip, N, K, now)

	local t = 0
	if K > 0 then
		local m = message(size, 0)
		local sent, received = 0, 0
		local t0 = now()
		while received < K do
			while sent < K and sent - received < W do
				local ok, err = ws:send(m)
				if not ok then
					if err == "send buffer full" then break end
					fail("wsbeat-recv: send: %s", tostring(err))
				end
				sent = sent + 1
			end
			local data = receive(ws, 10)
			if not data or #data ~= size then fail("wsbeat-recv: bad echo: %s", tostring(data and #data)) end
			received = received + 1
		end
		t = now() - t0
	end
	ws:close()
	wsbeat.run(5)
	report("wsbeat-recv" .. SUFFIX, size, lat, K, t)
end

------------------------------------------------------------------ lua-http

local function load_lua_http()
	-- Debian installs lua-http's pure-Lua files for 5.1-5.3 only (and some of
	-- its dependencies for 5.1/5.2 only); the C parts exist for 5.4.
	local extra = {}
	for _, v in ipairs { "5.4", "5.3", "5.2", "5.1" } do
		extra[#extra + 1] = "/usr/share/lua/" .. v .. "/?.lua;/usr/share/lua/" .. v .. "/?/init.lua"
	end
	package.path = package.path .. ";" .. table.concat(extra, ";")
	return require "cqueues", require "http.websocket", require "cqueues.condition"
end

local function bench_lua_http(url, size, N, K, W, ca)
	local cqueues, websocket, condition = load_lua_http()
	local now = cqueues.monotime
	local cq = cqueues.new()
	local result

	cq:wrap(function()
		local ws = websocket.new_from_uri(url)
		if url:match("^wss:") then
			local ctx = require("http.tls").new_client_context()
			ctx:getStore():add(ca)
			ctx:setVerify(require("openssl.ssl.context").VERIFY_PEER)
			ws.request.ctx = ctx
		end
		local ok, err = ws:connect(10)
		if not ok then fail("lua-http: connect: %s", tostring(err)) end

		local function roundtrip(i)
			local m = message(size, i)
			assert(ws:send(m, "text"))
			local data, kind = ws:receive(10)
			if data ~= m then fail("lua-http: bad echo %d: %s", i, tostring(kind)) end
		end
		local lat = timed_roundtrips(roundtrip, N, K, now)

		-- a sender coroutine keeps at most W in flight; this one receives
		-- and wakes the sender when the window has room
		local t = 0
		if K > 0 then
			local m = message(size, 0)
			local sent, received = 0, 0
			local room = condition.new()
			local t0 = now()
			cq:wrap(function()
				while sent < K do
					if sent - received >= W then
						room:wait()
					else
						assert(ws:send(m, "text"))
						sent = sent + 1
					end
				end
			end)
			while received < K do
				local data, rerr = ws:receive(10)
				if not data or #data ~= size then fail("lua-http: bad echo: %s", tostring(data and #data or rerr)) end
				received = received + 1
				if sent - received < W then room:signal() end
			end
			t = now() - t0
		end
		ws:close(1000, "", 2)
		result = { lat = lat, t = t }
	end)

	local ok, err = cq:loop()
	if not ok then fail("lua-http: %s", tostring(err)) end
	if not result then fail("lua-http: the benchmark did not finish") end
	report("lua-http" .. (JIT and "-jit" or ""), size, result.lat, K, result.t)
end

------------------------------------------------------------------ main

local client = arg[1]
if client == "versions" then
	local wsbeat = load_wsbeat()
	local lua = JIT and JIT.version or _VERSION
	local cq_ok, cqueues = pcall(load_lua_http)
	if not cq_ok then -- LuaJIT without cqueues for 5.1
		print(("%s (%s); lua-http not installed"):format(wsbeat._VERSION, lua))
		os.exit(0)
	end
	local ok, hv = pcall(require, "http.version")
	print(("%s (%s); lua-http %s; cqueues %s"):format(
		wsbeat._VERSION, lua, ok and hv.version or "?", tostring(cqueues.VERSION)))
	os.exit(0)
end

local url, size, N, K, W, ca = arg[2], tonumber(arg[3] or ""), tonumber(arg[4] or ""),
	tonumber(arg[5] or ""), tonumber(arg[6] or ""), arg[7]
if not (url and size and N and K and W) or (url:match("^wss:") and not ca) then
	io.stderr:write("usage: lua5.4 lua-client.lua wsbeat|wsbeat-recv|lua-http URL SIZE N K W [CAFILE]\n")
	os.exit(2)
end
local run = ({ wsbeat = bench_wsbeat, ["wsbeat-recv"] = bench_wsbeat_recv, ["lua-http"] = bench_lua_http })[client]
if not run then
	io.stderr:write("lua-client: unknown client '", tostring(client), "'\n")
	os.exit(2)
end
run(url, tointeger(size), tointeger(N), tointeger(K), tointeger(W), ca)
