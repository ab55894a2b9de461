-- Heartbeat figures (a benchmark, not a test):
--   detect  N   : N SIGSTOP trials: time from the last byte received to
--                 "reconnecting" (heartbeat_timeout), against interval+timeout,
--                 and time from SIGCONT to "open" again.
--   idle    N S : CPU of N idle connections over S seconds, heartbeat at 1 s
--                 versus heartbeat off, side by side, as percent of one core.
-- usage: lua5.4 bench/heartbeat.lua detect|idle ... (bench/heartbeat.sh runs both)
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath
local wsbeat = require "wsbeat"
local core = require "wsbeat.core"

local function sh(cmd)
	local p = assert(io.popen(cmd))
	local s = p:read("a")
	p:close()
	return (s:gsub("%s+$", ""))
end

local function start_server(prog)
	local log = os.tmpname()
	local pid = sh(("sh -c 'exec %s --port 0 >%s 2>&1' </dev/null & echo $!"):format(prog, log))
	for _ = 1, 400 do
		local f = io.open(log)
		local line = f and f:read("l")
		if f then f:close() end
		local port = line and line:match("^PORT (%d+)")
		if port then return pid, tonumber(port), log end
		os.execute("sleep 0.025")
	end
	error("server did not start")
end

local function loop_until(pred, limit)
	local deadline = core.now() + limit
	while not pred() do
		if core.now() > deadline then return false end
		local t = wsbeat.timeout()
		if not t or t > 0.01 then t = 0.01 end
		core.wait(t)
		wsbeat.step()
	end
	return true
end

local function median(t)
	table.sort(t)
	local n = #t
	if n % 2 == 1 then return t[(n + 1) // 2] end
	return (t[n // 2] + t[n // 2 + 1]) / 2
end

local mode = arg[1]
if mode == "detect" then
	local trials = tonumber(arg[2]) or 50
	local interval, timeout = 0.2, 0.3
	local pid, port, log = start_server("/usr/bin/python3 spec/fixtures/server.py")
	local t_rx, t_detect, t_open
	local ws = wsbeat.connect(("ws://127.0.0.1:%d/echo"):format(port), {
		heartbeat = { interval = interval, timeout = timeout },
		reconnect = { delay = 0.05, max_delay = 0.05, jitter = 0 },
		connect_timeout = 5,
		on_message = function() t_rx = core.now() end,
		on_state = function(_, st, info)
			if st == "reconnecting" and info.cause == "heartbeat_timeout" then t_detect = core.now() end
			if st == "open" then t_open = core.now() end
		end,
	})
	assert(loop_until(function() return ws:state() == "open" end, 5))
	local detect, back = {}, {}
	for i = 1, trials do
		t_rx, t_detect = nil, nil
		ws:send("x")
		assert(loop_until(function() return t_rx end, 5), "no echo")
		os.execute("kill -STOP " .. pid)
		assert(loop_until(function() return t_detect end, 5), "not detected")
		detect[#detect + 1] = t_detect - t_rx
		-- let a reconnect attempt hang on the frozen server, then resume it
		loop_until(function() return false end, 0.2)
		t_open = nil
		local t_cont = core.now()
		os.execute("kill -CONT " .. pid)
		assert(loop_until(function() return t_open end, 5), "did not reopen")
		back[#back + 1] = t_open - t_cont
		io.stderr:write(("trial %d: detect %.3fs back %.3fs\n"):format(i, detect[#detect], back[#back]))
	end
	ws:close()
	wsbeat.run(2)
	os.execute("kill " .. pid)
	os.remove(log)
	local dmax = math.max(table.unpack(detect))
	local bmax = math.max(table.unpack(back))
	print(("detection over %d SIGSTOP trials (interval %.1f + timeout %.1f = %.1f s): median %.3f s, max %.3f s")
		:format(trials, interval, timeout, interval + timeout, median(detect), dmax))
	print(("server back (SIGCONT) to open: median %.1f ms, max %.1f ms"):format(median(back) * 1000, bmax * 1000))
elseif mode == "idle" then
	local n, secs = tonumber(arg[2]) or 1000, tonumber(arg[3]) or 20
	local pid, port, log = start_server("node bench/echo-server.js")
	local function measure(hb)
		local clients, open = {}, 0
		for i = 1, n do
			clients[i] = wsbeat.connect(("ws://127.0.0.1:%d/echo"):format(port), {
				heartbeat = hb, reconnect = false,
				on_state = function(_, st) if st == "open" then open = open + 1 end end,
			})
		end
		assert(loop_until(function() return open == n end, 60), "not all open: " .. open)
		local c0, w0 = os.clock(), core.now()
		loop_until(function() return false end, secs)
		local cpu, wall = os.clock() - c0, core.now() - w0
		local rtt = hb and clients[1]:stats().rtt
		for _, ws in ipairs(clients) do ws:close() end
		wsbeat.run(10)
		return cpu / wall * 100, rtt
	end
	local off = measure(false)
	local on, rtt = measure({ interval = 1, timeout = 5 })
	os.execute("kill " .. pid)
	os.remove(log)
	print(("%d idle connections over %d s: heartbeat every 1 s %.2f %% of one core, heartbeat off %.2f %%, difference %.2f %% (rtt of one: %.2f ms)")
		:format(n, secs, on, off, on - off, (rtt or 0) * 1000))
else
	io.stderr:write("usage: lua5.4 bench/heartbeat.lua detect [N] | idle [N] [S]\n")
	os.exit(2)
end
