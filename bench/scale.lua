#!/usr/bin/env lua5.4
--[[ Scale benchmark: many heartbeating wsbeat connections in one process.

  lua5.4 bench/scale.lua URL N INTERVAL CPU_SECONDS RESTART_CMD UP_FILE

Run by bench/scale.sh, which starts the server and provides RESTART_CMD (a
shell command that stops the server, waits, starts it again on the same
port and then creates UP_FILE). Phases, each printing "key=value" lines:

 1. memory: RSS with the engine created and no connection, then after
    opening N connections (in batches of at most BATCH connecting at once);
    the difference divided by N is the memory per idle connection.
 2. step cost: the median and p99 duration of a step() that finds nothing
    to do, at 0, N/100, N/10 and N open connections.
 3. heartbeat CPU: with all N open and heartbeat {interval=INTERVAL},
    CPU time (user+system, /proc/self/stat) over CPU_SECONDS of
    wsbeat.run(), as a percentage of one core, with the pings sent and
    pongs received in that window.
 4. reconnect storm: RESTART_CMD runs in the background; every client sees
    its link drop and reconnects with jitter; once UP_FILE exists, the time
    until all N are open again, the spread of the reopen times and the
    busiest 100 ms.
]]

local ROOT = ((arg[0]):match("^(.*)/[^/]*/[^/]*$") or ".")
package.path = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;" .. package.path
package.cpath = ROOT .. "/build/?.so;" .. package.cpath
local wsbeat = require "wsbeat"
local core = require "wsbeat.core"
local now = core.now

local url, N, INTERVAL, CPU_SECONDS, RESTART_CMD, UP_FILE =
	arg[1], tonumber(arg[2] or ""), tonumber(arg[3] or ""), tonumber(arg[4] or ""), arg[5], arg[6]
if not (url and N and INTERVAL and CPU_SECONDS and RESTART_CMD and UP_FILE) then
	io.stderr:write("usage: lua5.4 bench/scale.lua URL N INTERVAL CPU_SECONDS RESTART_CMD UP_FILE\n")
	os.exit(2)
end
N = math.tointeger(N)
local BATCH = tonumber(os.getenv("BATCH") or "") or N
local RECONNECT = { delay = 1, max_delay = 5, factor = 2, jitter = 1, min_uptime = 1 }

local function out(k, v) io.write(k, "=", tostring(v), "\n"); io.flush() end
local function fail(msg) io.stderr:write("scale.lua: ", msg, "\n"); os.exit(1) end

local function rss_kb()
	for line in io.lines("/proc/self/status") do
		local kb = line:match("^VmRSS:%s+(%d+)")
		if kb then return tonumber(kb) end
	end
end
local TICK = tonumber(io.popen("getconf CLK_TCK"):read("l")) or 100
local function cpu_s()
	local f = assert(io.open("/proc/self/stat"))
	local s = f:read("a")
	f:close()
	-- fields after the ")" of the command name: state is field 3, utime 14, stime 15
	local rest = s:match("%) (.*)$")
	local fields = {}
	for x in rest:gmatch("%S+") do fields[#fields + 1] = x end
	return (tonumber(fields[12]) + tonumber(fields[13])) / TICK
end

-- state bookkeeping shared by every client: one callback, no per-client closure
local count = { connecting = 0, open = 0, reconnecting = 0, closing = 0, closed = 0 }
local storm_t0        -- when the restarted server was seen up
local reopen = {}      -- reopen times (relative to storm_t0)
local closed_bad
local function on_state(_, st, info)
	count[st] = count[st] + 1
	if st == "open" and storm_t0 then reopen[#reopen + 1] = now() - storm_t0 end
	if st == "closed" then closed_bad = closed_bad or info.reason end
end
local clients = {}
local function open_count() return wsbeat.stats().open end

local function step_cost(samples)
	-- the loop is quiet between heartbeats: time steps that find nothing
	local t = {}
	for i = 1, samples do
		local t0 = now()
		wsbeat.step()
		t[i] = now() - t0
	end
	table.sort(t)
	return t[math.ceil(#t * 0.5)] * 1e6, t[math.ceil(#t * 0.99)] * 1e6
end

local function settle(seconds)
	wsbeat.run(seconds) -- returns false at the deadline: clients stay open
end

local function measure_steps(n)
	settle(0.3)
	local p50, p99 = step_cost(20000)
	out(("step_us_p50_at_%d"):format(n), ("%.2f"):format(p50))
	out(("step_us_p99_at_%d"):format(n), ("%.2f"):format(p99))
end

-- 1. memory and step cost while connecting
wsbeat.fd() -- creates the engine
collectgarbage(); collectgarbage()
settle(0.2)
measure_steps(0)
local rss0 = rss_kb()
out("rss_kb_engine", rss0)

local checkpoints = { [math.max(1, N // 100)] = true, [math.max(1, N // 10)] = true, [N] = true }
local t_connect = now()
local opts = {
	heartbeat = { interval = INTERVAL, timeout = INTERVAL },
	reconnect = RECONNECT,
	connect_timeout = 30,
	on_state = on_state,
}
while #clients < N do
	local target = math.min(N, #clients + BATCH)
	for cp in pairs(checkpoints) do
		if cp > #clients and cp < target then target = cp end
	end
	while #clients < target do clients[#clients + 1] = wsbeat.connect(url, opts) end
	local deadline = now() + 60
	while open_count() < #clients do
		if closed_bad then fail("a client closed: " .. closed_bad) end
		if now() > deadline then fail(("only %d of %d open after 60 s"):format(open_count(), #clients)) end
		wsbeat.run(0.05)
	end
	if checkpoints[#clients] and #clients < N then measure_steps(#clients) end
end
out("connect_all_s", ("%.2f"):format(now() - t_connect))
collectgarbage(); collectgarbage()
settle(1)
local rss1 = rss_kb()
out("rss_kb_open", rss1)
out("kb_per_connection", ("%.2f"):format((rss1 - rss0) / N))
measure_steps(N)

-- 3. heartbeat CPU over a window of several intervals
local s0 = wsbeat.stats()
local c0, w0 = cpu_s(), now()
settle(CPU_SECONDS)
local c1, w1 = cpu_s(), now()
local s1 = wsbeat.stats()
out("heartbeat_window_s", ("%.1f"):format(w1 - w0))
out("heartbeat_cpu_percent", ("%.2f"):format((c1 - c0) / (w1 - w0) * 100))
if s1.pings_sent then out("pings_sent", s1.pings_sent - s0.pings_sent) end
if s1.pongs_received then out("pongs_received", s1.pongs_received - s0.pongs_received) end
out("open_after_heartbeat", open_count())
if open_count() ~= N then fail("connections were lost during the heartbeat window") end
out("rss_kb_after_heartbeat", rss_kb())

-- 4. reconnect storm
os.remove(UP_FILE)
local t_kill = now()
os.execute("(" .. RESTART_CMD .. ") >/dev/null 2>&1 &")
local t_down
while not storm_t0 do
	wsbeat.run(0.05)
	if not t_down and count.reconnecting > 0 then t_down = now() end
	local f = io.open(UP_FILE)
	if f then f:close(); storm_t0 = now() end
	if now() - t_kill > 60 then fail("the server did not come back") end
end
local down_now = N - open_count()
out("storm_dropped", down_now)
out("storm_server_down_s", ("%.2f"):format(storm_t0 - (t_down or t_kill)))
local deadline = storm_t0 + RECONNECT.max_delay + 30
while open_count() < N do
	if now() > deadline then break end
	wsbeat.run(0.05)
end
local back = open_count()
out("storm_open_again", back)
table.sort(reopen)
local function pct(p) return reopen[math.max(1, math.ceil(#reopen * p))] or 0 end
out("storm_all_open_s", back == N and ("%.2f"):format(pct(1)) or "never")
out("storm_reopen_p10_s", ("%.2f"):format(pct(0.10)))
out("storm_reopen_p50_s", ("%.2f"):format(pct(0.50)))
out("storm_reopen_p90_s", ("%.2f"):format(pct(0.90)))
local buckets, peak = {}, 0
for _, t in ipairs(reopen) do
	local b = math.floor(math.max(0, t) * 10)
	buckets[b] = (buckets[b] or 0) + 1
	if buckets[b] > peak then peak = buckets[b] end
end
out("storm_peak_opens_per_100ms", peak)
out("storm_max_delay_s", RECONNECT.max_delay)
out("reconnects_total", (wsbeat.stats().reconnects or 0))

for _, ws in ipairs(clients) do ws:close() end
wsbeat.run(30)
out("done", 1)
if back ~= N then os.exit(1) end
