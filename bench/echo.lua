#!/usr/bin/env lua5.4
--[[ Echo benchmark: wsbeat vs lua-http (Lua 5.4), one client per process.

  lua5.4 bench/echo.lua <client> <ws-url> [N] [K] [W]
      client: wsbeat       on_message callback, host loop = core.wait() + wsbeat.step()
              wsbeat-recv  no callback, ws:receive() on the main thread
              lua-http     http.websocket inside one cqueues controller
      N: round trips for the latency test (default 10000)
      K: messages for the pipelined test (default 50000)
      W: at most W messages in flight during the pipelined test (default 512)
    Prints one line:
      RESULT client=<c> rtt_p50_us=.. rtt_p99_us=.. rtt_mean_us=.. msg_s=.. pipe_s=..

  lua5.4 bench/echo.lua versions
    Prints the wsbeat / lua-http / cqueues versions in use.

  lua5.4 bench/echo.lua summary <results-file>
    Reads the RESULT lines (several rounds per client), prints a table of
    medians and the wsbeat/lua-http ratios.

Message: 32 bytes of ASCII text. Latency: send one, wait for its echo,
repeat N times (after a warm-up of 500 round trips); p50/p99 over the N
samples. Throughput: send K messages without waiting for echoes (at most W
outstanding), stop the clock when the K-th echo arrives; msg/s = K / time.
Every echo is checked (same length, and for the latency test same content).
]]

-- project root = the directory above this script's directory
local ROOT = ((arg and arg[0] or "./echo.lua"):match("^(.*)/[^/]*$") or ".") .. "/.."

local MSG = ("0123456789abcdefghijklmnopqrstuv") -- 32 bytes
assert(#MSG == 32)
local WARMUP = 500

local function percentile(sorted, p)
	local n = #sorted
	local i = math.ceil(p * n)
	if i < 1 then i = 1 elseif i > n then i = n end
	return sorted[i]
end

local function latency_stats(lat)
	table.sort(lat)
	local sum = 0
	for i = 1, #lat do sum = sum + lat[i] end
	return percentile(lat, 0.50) * 1e6, percentile(lat, 0.99) * 1e6, sum / #lat * 1e6
end

local function report(client, lat, k, pipe_s)
	local p50, p99, mean = latency_stats(lat)
	io.write(string.format(
		"RESULT client=%s rtt_p50_us=%.1f rtt_p99_us=%.1f rtt_mean_us=%.1f msg_s=%.0f pipe_s=%.4f\n",
		client, p50, p99, mean, k / pipe_s, pipe_s))
	io.flush()
end

------------------------------------------------------------------ wsbeat

local function load_wsbeat()
	package.path = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;" .. package.path
	package.cpath = ROOT .. "/build/?.so;" .. package.cpath
	return require "wsbeat", require "wsbeat.core"
end

-- Style 1: on_message callback; the host loop blocks in core.wait() (poll on
-- the engine fd, then service) and calls wsbeat.step() to dispatch.
local function bench_wsbeat(url, N, K, W)
	local wsbeat, core = load_wsbeat()
	local now, wait, step = core.now, core.wait, wsbeat.step

	local received = 0   -- echoes seen so far
	local bad = nil
	local state = "connecting"
	local ws = wsbeat.connect(url, {
		heartbeat = false, reconnect = false,
		on_message = function(_, data)
			if #data ~= 32 then bad = bad or ("echo of length " .. #data) end
			received = received + 1
		end,
		on_state = function(_, st, info)
			state = st
			if st == "closed" and not bad then bad = "closed: " .. tostring(info.reason) end
		end,
		on_error = function(_, err) bad = bad or err end,
	})
	local deadline = now() + 10
	while state ~= "open" do
		if bad then error("wsbeat: " .. bad) end
		if now() > deadline then error("wsbeat: connect timeout") end
		wait(0.5); step()
	end

	local function roundtrip()
		local want = received + 1
		assert(ws:send(MSG))
		repeat
			wait(); step()
			if bad then error("wsbeat: " .. bad) end
		until received >= want
	end

	for _ = 1, WARMUP do roundtrip() end
	local lat = {}
	for i = 1, N do
		local t0 = now()
		roundtrip()
		lat[i] = now() - t0
	end

	-- pipelined: refill the window after every step()
	received = 0
	local sent = 0
	local t0 = now()
	while received < K do
		while sent < K and sent - received < W do
			local ok, err = ws:send(MSG)
			if not ok then
				if err == "send buffer full" then break end
				error("wsbeat: send: " .. tostring(err))
			end
			sent = sent + 1
		end
		wait(); step()
		if bad then error("wsbeat: " .. bad) end
	end
	local pipe_s = now() - t0

	ws:close()
	wsbeat.run(5)
	report("wsbeat", lat, K, pipe_s)
end

-- Style 2: no callback, blocking ws:receive() on the main thread.
local function bench_wsbeat_recv(url, N, K, W)
	local wsbeat, core = load_wsbeat()
	local now, wait, step = core.now, core.wait, wsbeat.step

	local ws = wsbeat.connect(url, { heartbeat = false, reconnect = false })
	local deadline = now() + 10
	while ws:state() ~= "open" do
		if ws:state() == "closed" then error("wsbeat-recv: connection failed") end
		if now() > deadline then error("wsbeat-recv: connect timeout") end
		wait(0.5); step()
	end
	local receive = ws.receive

	local function roundtrip()
		assert(ws:send(MSG))
		local data, kind = receive(ws, 10)
		if data ~= MSG then error("wsbeat-recv: bad echo: " .. tostring(data) .. " " .. tostring(kind)) end
	end
	for _ = 1, WARMUP do roundtrip() end
	local lat = {}
	for i = 1, N do
		local t0 = now()
		roundtrip()
		lat[i] = now() - t0
	end

	-- pipelined: fill the window, then one receive() per echo, refilling as we go
	local sent, received = 0, 0
	local t0 = now()
	while received < K do
		while sent < K and sent - received < W do
			local ok, err = ws:send(MSG)
			if not ok then
				if err == "send buffer full" then break end
				error("wsbeat-recv: send: " .. tostring(err))
			end
			sent = sent + 1
		end
		local data = receive(ws, 10)
		if not data or #data ~= 32 then error("wsbeat-recv: bad echo: " .. tostring(data)) end
		received = received + 1
	end
	local pipe_s = now() - t0

	ws:close()
	wsbeat.run(5)
	report("wsbeat-recv", lat, K, pipe_s)
end

------------------------------------------------------------------ lua-http

local function load_lua_http()
	-- Debian installs lua-http's pure-Lua files for 5.1-5.3 only (and some of
	-- its dependencies, e.g. basexx, for 5.1/5.2 only); the C parts exist for 5.4.
	local extra = {}
	for _, v in ipairs { "5.4", "5.3", "5.2", "5.1" } do
		extra[#extra + 1] = "/usr/share/lua/" .. v .. "/?.lua;/usr/share/lua/" .. v .. "/?/init.lua"
	end
	package.path = package.path .. ";" .. table.concat(extra, ";")
	return require "cqueues", require "http.websocket", require "cqueues.condition"
end

local function bench_lua_http(url, N, K, W)
	local cqueues, websocket, condition = load_lua_http()
	local now = cqueues.monotime
	local cq = cqueues.new()
	local result

	cq:wrap(function()
		local ws = websocket.new_from_uri(url)
		assert(ws:connect(10))

		local function roundtrip()
			assert(ws:send(MSG, "text"))
			local data, kind = ws:receive(10)
			if data ~= MSG then error("lua-http: bad echo: " .. tostring(data) .. " " .. tostring(kind)) end
		end
		for _ = 1, WARMUP do roundtrip() end
		local lat = {}
		for i = 1, N do
			local t0 = now()
			roundtrip()
			lat[i] = now() - t0
		end

		-- pipelined: a sender coroutine keeps at most W in flight, this
		-- coroutine receives and wakes the sender when the window has room.
		local sent, received = 0, 0
		local room = condition.new()
		local t0 = now()
		cq:wrap(function()
			while sent < K do
				if sent - received >= W then
					room:wait()
				else
					assert(ws:send(MSG, "text"))
					sent = sent + 1
				end
			end
		end)
		while received < K do
			local data, err = ws:receive(10)
			if not data or #data ~= 32 then error("lua-http: bad echo: " .. tostring(data) .. " " .. tostring(err)) end
			received = received + 1
			if sent - received < W then room:signal() end
		end
		local pipe_s = now() - t0
		ws:close(1000, "", 2)
		result = { lat = lat, pipe_s = pipe_s }
	end)

	local ok, err = cq:loop()
	if not ok then error("lua-http: " .. tostring(err)) end
	assert(result, "lua-http: benchmark did not finish")
	report("lua-http", result.lat, K, result.pipe_s)
end

------------------------------------------------------------------ summary

local function median(t)
	local s = {}
	for i = 1, #t do s[i] = t[i] end
	table.sort(s)
	local n = #s
	if n == 0 then return nil end
	if n % 2 == 1 then return s[(n + 1) // 2] end
	return (s[n // 2] + s[n // 2 + 1]) / 2
end

local function summary(file)
	local by = {}      -- client -> field -> list of values
	local order = {}
	for line in io.lines(file) do
		local client = line:match("^RESULT client=(%S+)")
		if client then
			if not by[client] then by[client] = {}; order[#order + 1] = client end
			for k, v in line:gmatch("(%w[%w_]*)=([%d%.]+)") do
				by[client][k] = by[client][k] or {}
				table.insert(by[client][k], tonumber(v))
			end
		end
	end
	local function med(client, key)
		return by[client] and by[client][key] and median(by[client][key])
	end
	local function minmax(client, key)
		local t = by[client][key]
		local lo, hi = math.huge, -math.huge
		for _, v in ipairs(t) do lo = math.min(lo, v); hi = math.max(hi, v) end
		return lo, hi
	end

	print(string.format("%-12s %6s %11s %11s %12s %16s   %s",
		"client", "rounds", "rtt_p50_us", "rtt_p99_us", "rtt_mean_us", "pipelined_msg_s", "msg_s range"))
	for _, c in ipairs(order) do
		local lo, hi = minmax(c, "msg_s")
		print(string.format("%-12s %6d %11.1f %11.1f %12.1f %16.0f   %.0f..%.0f",
			c, #by[c].msg_s, med(c, "rtt_p50_us"), med(c, "rtt_p99_us"), med(c, "rtt_mean_us"),
			med(c, "msg_s"), lo, hi))
	end
	print("(medians over rounds; latency in microseconds per round trip)")

	local lh = by["lua-http"]
	local failed = false
	for _, c in ipairs { "wsbeat", "wsbeat-recv" } do
		if by[c] and lh then
			local tr = med(c, "msg_s") / med("lua-http", "msg_s")
			local lr = med(c, "rtt_p50_us") / med("lua-http", "rtt_p50_us")
			local pr = med(c, "rtt_p99_us") / med("lua-http", "rtt_p99_us")
			print(string.format(
				"ratio %s/lua-http: throughput = %.2f (target >= 1.5)%s; latency p50 = %.2f (target <= 1.0)%s; p99 = %.2f",
				c, tr, tr >= 1.5 and "" or " MISSED", lr, lr <= 1.0 and "" or " MISSED", pr))
		end
	end
	if not by.wsbeat or not lh then
		print("missing results for wsbeat or lua-http")
		failed = true
	end
	return not failed
end

------------------------------------------------------------------ main

local mode = arg[1]
if mode == "summary" then
	os.exit(summary(assert(arg[2], "summary needs a results file")) and 0 or 1)
end

if mode == "versions" then
	-- not a benchmark: one line of library versions
	local wsbeat = load_wsbeat()
	local cqueues = load_lua_http()
	local ok, hv = pcall(require, "http.version")
	print(string.format("%s (%s); lua-http %s; cqueues %s",
		wsbeat._VERSION, _VERSION, ok and hv.version or "?", tostring(cqueues.VERSION)))
	os.exit(0)
end

local url = arg[2]
local N = tonumber(arg[3] or "") or 10000
local K = tonumber(arg[4] or "") or 50000
local W = tonumber(arg[5] or "") or 512
if not url then
	io.stderr:write("usage: lua5.4 echo.lua wsbeat|wsbeat-recv|lua-http ws://127.0.0.1:PORT/echo [N] [K] [W]\n" ..
		"       lua5.4 echo.lua summary RESULTS-FILE\n")
	os.exit(2)
end

if mode == "wsbeat" then
	bench_wsbeat(url, N, K, W)
elseif mode == "wsbeat-recv" then
	bench_wsbeat_recv(url, N, K, W)
elseif mode == "lua-http" then
	bench_lua_http(url, N, K, W)
else
	io.stderr:write("unknown client '" .. tostring(mode) .. "'\n")
	os.exit(2)
end
