--- The client side of bench/openresty.sh, loaded by the nginx that the
-- script generates (one worker, pinned to CPU 1).  One configuration per
-- nginx:
--
--   wsbeat-socket     wsbeat.openresty, wake = "socket"
--   wsbeat-poll-10ms  wsbeat.openresty, wake = "poll", interval = 0.01
--   wsbeat-poll-1ms   wsbeat.openresty, wake = "poll", interval = 0.001
--   resty             lua-resty-websocket's client in a timer (Debian's
--                     lua-nginx-websocket names it nginx.websocket.client)
--
-- init() (from init_worker_by_lua) runs, once the connection is open:
-- min(200, N) warm-up round trips; N timed round trips of one SIZE-byte
-- text message, one in flight (wsbeat: the next send is made from
-- on_message); K messages with at most W unanswered (wsbeat: a sliding
-- window refilled from on_message; resty: W frames sent, then W received,
-- repeated: the natural way with one cosocket, which cannot read and
-- write at once from one light thread).  Then it appends a RESULT line to
-- opts.out (also logged at NOTICE with the marker "ORBENCH"), then
-- "IDLE": the client stays connected and idle (wsbeat with its default
-- heartbeat of 20 s; resty waiting in recv_frame() with a 20 s timeout,
-- after which it pings: the same cadence by hand), and the script measures
-- the worker from outside.  stats() answers GET /stats with the loop's
-- wake-ups so far.  Any failure appends "ERROR <text>".
-- luacheck: globals ngx
local ffi = require "ffi"

local M = {}

ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } orbench_timespec;
int clock_gettime(int clk, orbench_timespec *ts);
]]
local ts = ffi.new("orbench_timespec")
local CLOCK_MONOTONIC = 1
-- One clock for every configuration (ngx.now() has ms resolution).
local function now()
	ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
	return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local OUT -- the file the script reads
local function emit(line)
	local f = io.open(OUT, "a")
	if f then
		f:write(line, "\n")
		f:close()
	end
	ngx.log(ngx.NOTICE, "ORBENCH ", line)
end

local failed = false
local function fail(...)
	if failed then return end
	failed = true
	local parts = { ... }
	for i = 1, #parts do parts[i] = tostring(parts[i]) end
	emit("ERROR " .. table.concat(parts):gsub("\n", " | "))
end

-- Message i: its index in the first 10 bytes, then filler.
local function message(size, i)
	local head = ("%010d"):format(i % 10000000000)
	if size <= #head then return head:sub(-size) end
	return head .. ("x"):rep(size - #head)
end

local function percentile(sorted, p)
	local i = math.ceil(p * #sorted)
	if i < 1 then i = 1 end
	return sorted[i]
end

local function report(o, lat, secs)
	table.sort(lat)
	emit(("RESULT config=%s size=%d n=%d k=%d w=%d p50_us=%.1f p99_us=%.1f msg_s=%.0f"):format(
		o.config, o.size, o.n, o.k, o.w,
		percentile(lat, 0.50) * 1e6, percentile(lat, 0.99) * 1e6, o.k / secs))
	emit("IDLE")
end

local loop_wakeups = 0 -- resty: returns of recv_frame() while idle
local driver           -- wsbeat.openresty, for the wsbeat configurations

---------------------------------------------------------------- wsbeat

local function run_wsbeat(o)
	driver = require "wsbeat.openresty"
	local N, K, W, size = o.n, o.k, o.w, o.size
	local warm = math.min(200, N)
	local lat = {}
	local phase, i, t0, cur = "warm", 0, 0, nil
	local sent, received, tstart = 0, 0, 0
	local m0 = message(size, 0)
	local ws

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
	local function next_step()
		if phase == "warm" and i >= warm then phase, i = "lat", 0 end
		if phase == "lat" and i >= N then
			phase = "thr"
			tstart = now()
			refill()
			return
		end
		i = i + 1
		cur = message(size, i)
		t0 = now()
		local ok, err = ws:send(cur)
		if not ok then error("send: " .. tostring(err)) end
	end

	driver.connect(o.url, {
		reconnect = false, -- a drop must show, not be papered over
		-- heartbeat: the default (20 s), as the idle figure asks
		on_state = function(w, state, info)
			if state == "open" and phase == "warm" and i == 0 then
				ws = w
				next_step()
			elseif state == "closed" or state == "reconnecting" then
				fail("wsbeat: ", state, " in phase ", phase, ": ", info.cause, " ", info.reason)
			end
		end,
		on_message = function(_, data)
			if phase == "thr" then
				if #data ~= size then fail("wsbeat: echo of length ", #data) end
				received = received + 1
				if received == K then
					local secs = now() - tstart
					phase = "idle"
					report(o, lat, secs)
				else
					refill()
				end
				return
			elseif phase == "idle" then
				fail("wsbeat: a message while idle")
				return
			end
			local t = now()
			if data ~= cur then fail("wsbeat: echo ", i, " differs") end
			if phase == "lat" then lat[i] = t - t0 end
			next_step()
		end,
		on_error = function(_, err) fail("wsbeat: callback: ", err) end,
	})
	local ok, err = driver.start { wake = o.wake, interval = o.interval }
	if not ok then fail("wsbeat.openresty.start: ", err) end
end

---------------------------------------------------------------- resty

-- lua-resty-websocket's client: resty.websocket.client upstream, the same
-- file as nginx.websocket.client in Debian's lua-nginx-websocket.
local function resty_client()
	for _, name in ipairs { "resty.websocket.client", "nginx.websocket.client" } do
		local ok, mod = pcall(require, name)
		if ok then return mod, name end
	end
	return nil
end

local function run_resty(premature, o)
	if premature then return end
	local client, name = resty_client()
	if not client then return fail("resty: neither resty.websocket.client nor nginx.websocket.client loads") end
	local wb, err = client:new { timeout = 10000, max_payload_len = 65536 }
	if not wb then return fail("resty: new: ", err) end
	local ok
	ok, err = wb:connect(o.url)
	if not ok then return fail("resty: connect: ", err) end
	local N, K, W, size = o.n, o.k, o.w, o.size

	-- the next text frame (a ping is answered, a pong skipped)
	local function recv()
		while true do
			local data, typ, e = wb:recv_frame()
			if not data then return nil, e end
			if typ == "text" then return data end
			if typ == "ping" then wb:send_pong(data)
			elseif typ == "close" then return nil, "closed by the server"
			end
		end
	end
	local function roundtrip(i)
		local m = message(size, i)
		local sent, e = wb:send_text(m)
		if not sent then return nil, "send: " .. tostring(e) end
		local data
		data, e = recv()
		if data ~= m then return nil, "echo " .. i .. ": " .. tostring(data and "differs" or e) end
		return true
	end

	for i = 1, math.min(200, N) do
		ok, err = roundtrip(i)
		if not ok then return fail("resty: ", err) end
	end
	local lat = {}
	for i = 1, N do
		local t0 = now()
		ok, err = roundtrip(i)
		lat[i] = now() - t0
		if not ok then return fail("resty: ", err) end
	end

	local m0 = message(size, 0)
	local done = 0
	local t0 = now()
	while done < K do
		local b = math.min(W, K - done)
		for _ = 1, b do
			ok, err = wb:send_text(m0)
			if not ok then return fail("resty: send: ", err) end
		end
		for _ = 1, b do
			local data
			data, err = recv()
			if not data or #data ~= size then return fail("resty: echo: ", data and #data or err) end
		end
		done = done + b
	end
	local secs = now() - t0
	report(o, lat, secs)
	ngx.log(ngx.NOTICE, "ORBENCH resty client module: ", name)

	-- idle: wait for the next frame, 20 s at most, then ping (a heartbeat
	-- by hand, at wsbeat's default cadence)
	wb:set_timeout(20000)
	while not ngx.worker.exiting() do
		local data, typ, e = wb:recv_frame()
		loop_wakeups = loop_wakeups + 1
		if not data then
			if not (e and e:find("timeout", 1, true)) then return fail("resty: idle: ", e) end
			wb:send_ping("hb")
		elseif typ == "ping" then
			wb:send_pong(data)
		elseif typ == "close" then
			return fail("resty: closed by the server while idle")
		end
	end
end

---------------------------------------------------------------- entry points

-- opts: config, url, size, n, k, w, out (a file path); wake and interval
-- for the wsbeat configurations.
function M.init(opts)
	OUT = opts.out
	emit("PID " .. ngx.worker.pid())
	if opts.config == "resty" then
		local ok, err = ngx.timer.at(0, run_resty, opts)
		if not ok then fail("ngx.timer.at: ", err) end
	else
		local ok, err = pcall(run_wsbeat, opts)
		if not ok then fail("wsbeat: ", err) end
	end
end

--- GET /stats: "wakeups=<n> turns=<n> wake=<mode> errors=<n>".
function M.stats()
	if driver then
		local s = driver.stats()
		ngx.say(("wakeups=%d turns=%d wake=%s errors=%d"):format(s.wakeups, s.turns, tostring(s.wake), s.errors))
	else
		ngx.say(("wakeups=%d turns=%d wake=- errors=0"):format(loop_wakeups, loop_wakeups))
	end
end

return M
