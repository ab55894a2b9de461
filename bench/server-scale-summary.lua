#!/usr/bin/env lua5.4
--[[ The report of the server scale benchmark (bench/server-scale.sh):

  lua5.4 bench/server-scale-summary.lua OUT/results.txt > OUT/summary.md

Reads the "META k=v ..." and "RESULT k=v ..." lines; every figure is a
median over the rounds (broadcasts: the median of each round's broadcasts,
then the median of those), every comparison a ratio to a baseline that ran
in the same command.
]]

local file = arg[1]
if not file then
	io.stderr:write("usage: lua5.4 bench/server-scale-summary.lua results.txt\n")
	os.exit(2)
end

local meta, rows = {}, {}
for line in io.lines(file) do
	local kind, rest = line:match("^(%u+) (.*)$")
	if kind == "META" then
		for k, v in rest:gmatch("([%w_]+)=(%S*)") do meta[k] = v end
	elseif kind == "RESULT" then
		local r = {}
		for k, v in rest:gmatch("([%w_]+)=(%S*)") do r[k] = tonumber(v) or v end
		rows[#rows + 1] = r
	end
end

local stats = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/stats.lua")
local median = stats.median
local function minmax(t)
	local lo, hi = math.huge, -math.huge
	for _, v in ipairs(t) do lo = math.min(lo, v); hi = math.max(hi, v) end
	return lo, hi
end
local function pick(test, server, field)
	local t = {}
	for _, r in ipairs(rows) do
		if r.test == test and (not server or r.server == server) and type(r[field]) == "number" then
			t[#t + 1] = r[field]
		end
	end
	return t
end
local function fmt(v, f) return v and (f or "%.2f"):format(v) or "not run" end
local function ratio(a, b)
	if not a or not b or b == 0 then return "n/a" end
	return ("%.2fx"):format(a / b)
end
local function list(t, f)
	local s = {}
	for i, v in ipairs(t) do s[i] = (f or "%.2f"):format(v) end
	return table.concat(s, ", ")
end

-- per-round medians of the broadcasts of one server (ms)
local function bcast_rounds(server, field)
	local by = {}
	for _, r in ipairs(rows) do
		if r.test == "bcast" and r.server == server and type(r[field]) == "number" then
			by[r.round] = by[r.round] or {}
			table.insert(by[r.round], r[field] / 1000)
		end
	end
	local per = {}
	for round = 1, tonumber(meta.ROUNDS) or 0 do
		if by[round] then per[#per + 1] = median(by[round]) end
	end
	return per
end

local N = tonumber(meta.N) or 0
local out = {}
local function w(...) out[#out + 1] = table.concat({ ... }) end

w("# Server scale benchmark")
w("")
w(("`bench/server-scale.sh` (`make bench-server-scale`), %s, commit %s; Linux %s, %s CPUs; "
	.. "libwebsockets %s, node %s with ws %s, Lua %s."):format(meta.date or "?", meta.commit or "?",
	meta.kernel or "?", meta.cpus or "?", meta.lws or "?", meta.node or "?", meta.ws or "?", meta.lua or "?"))
w(("N = %s connections, %s rounds (servers interleaved, order rotating per round), "
	.. "CPU window %s s, %s broadcasts per server and round, detection: %s clients, %s trials per round. "
	.. "Run time %s s; load average (1, 5, 15 min) %s at the start, %s at the end."):format(meta.N or "?",
	meta.ROUNDS or "?", meta.WINDOW or "?", meta.BCASTS or "?", meta.DN or "?", meta.DTRIALS or "?",
	meta.elapsed_s or "?", meta.load_start or "?", meta.load_end or "?"))
w("")

-- the headline table
local mem = {}
for _, s in ipairs { "wsbeat", "wsbeat-nohb", "lws", "node" } do mem[s] = median(pick("mem", s, "kib_per_conn")) end
local cpu_on, cpu_off = median(pick("cpu", "wsbeat", "pct")), median(pick("cpu", "wsbeat-nohb", "pct"))
local delays = pick("detect", nil, "delay_s")
local firsts = pick("detect", nil, "first_s")
local bound = (tonumber(meta.DINTERVAL) or 1) * 2
-- a probe may leave up to interval/200 late and the deadline snaps to the
-- same grid (API.md "Heartbeat"): the bound plus two grid steps
local slack = 2 * math.min(0.025, (tonumber(meta.DINTERVAL) or 1) / 200)
local b_ws = median(bcast_rounds("wsbeat-nohb", "last_us"))
local b_wshb = median(bcast_rounds("wsbeat", "last_us"))
local b_node = median(bcast_rounds("node", "last_us"))

local function met(v, target)
	if not v then return "not run" end
	return v <= target and "met" or "**not met**"
end

-- one row of the headline table
local function row(...) w("| ", table.concat({ ... }, " | "), " |") end
local function over(values, limit)
	local c = 0
	for _, d in ipairs(values) do if d > limit then c = c + 1 end end
	return c
end

row("measure", "wsbeat", "baseline (same command)", "wsbeat / baseline", "target")
w("|---|---:|---:|---:|---|")
row(("memory per idle connection (RSS with %s minus RSS with 0, / %s), heartbeat %s s / %s s"):format(
		meta.N, meta.N, meta.INTERVAL, meta.INTERVAL),
	fmt(mem.wsbeat) .. " KiB", "plain libwebsockets server (lws-server): " .. fmt(mem.lws) .. " KiB",
	ratio(mem.wsbeat, mem.lws), "≤ 16 KiB: " .. met(mem.wsbeat, 16))
row("", "", "node ws: " .. fmt(mem.node) .. " KiB", ratio(mem.wsbeat, mem.node), "")
row("", "", "wsbeat, heartbeat = false: " .. fmt(mem["wsbeat-nohb"]) .. " KiB",
	ratio(mem.wsbeat, mem["wsbeat-nohb"]), "")
row(("heartbeat CPU, %s idle connections, interval %s s (%s probes/s), %s s window, %% of one core"):format(
		meta.N, meta.INTERVAL, fmt(N / (tonumber(meta.INTERVAL) or 1), "%.0f"), meta.WINDOW),
	fmt(cpu_on) .. " %", "heartbeat = false: " .. fmt(cpu_off) .. " %",
	("%s (+%s points)"):format(ratio(cpu_on, cpu_off), cpu_on and cpu_off and ("%.2f"):format(cpu_on - cpu_off) or "?"),
	"≤ 5 %: " .. met(cpu_on, 5))
if #delays > 0 then
	local lo, hi = minmax(delays)
	local flo, fhi = minmax(firsts)
	local n_over = over(delays, bound + slack)
	row(("detection: %s clients vanish at once (SIGSTOP), heartbeat %s s / %s s: stop → all closed, median of %d trials"):format(
			meta.DN, meta.DINTERVAL, meta.DINTERVAL, #delays),
		("%.2f s (%.2f-%.2f; first close %.2f-%.2f)"):format(median(delays), lo, hi, flo, fhi),
		("bound interval + timeout: %.2f s"):format(bound), ratio(median(delays), bound),
		"≤ bound: " .. (n_over == 0 and ("all %d trials (bound + %.0f ms grid)"):format(#delays, slack * 1000)
			or ("**%d of %d over** (the latest %.0f ms past the bound)"):format(n_over, #delays, (hi - bound) * 1000)))
else
	row("detection", "not run", "", "", "")
end
row(("broadcast of 64 B to %s: broadcast call → last client has it (median of the rounds' medians)"):format(meta.N),
	fmt(b_ws) .. " ms", "node ws (`wss.clients.forEach(c => c.send(msg))`): " .. fmt(b_node) .. " ms",
	ratio(b_ws, b_node), "")
row(("the same, wsbeat with heartbeat %s s / %s s"):format(meta.INTERVAL, meta.INTERVAL), fmt(b_wshb) .. " ms",
	"node ws: " .. fmt(b_node) .. " ms", ratio(b_wshb, b_node), "")
w("")
w("wsbeat in the broadcast row is the server with heartbeat = false (node ws has none); the one with")
w("heartbeat is the row below it. A ratio below 1 favours wsbeat.")
w("")

-- details
w("## Per round")
w("")
w("Memory per connection (KiB), one figure per round, and the RSS (MiB) with 0 and with N connections (medians):")
w("")
w("| server | KiB per connection, by round | median | RSS 0 → N (MiB) | all N open after (s) |")
w("|---|---|---:|---|---:|")
local NAMES = { wsbeat = "wsbeat (heartbeat 5 s)", ["wsbeat-nohb"] = "wsbeat (heartbeat = false)",
	lws = "lws-server (plain libwebsockets)", node = "node ws" }
for _, s in ipairs { "wsbeat", "wsbeat-nohb", "lws", "node" } do
	local k = pick("mem", s, "kib_per_conn")
	if #k > 0 then
		w(("| %s | %s | %.2f | %.1f → %.1f | %.2f |"):format(NAMES[s], list(k), median(k),
			median(pick("mem", s, "rss0_kb")) / 1024, median(pick("mem", s, "rss1_kb")) / 1024,
			median(pick("mem", s, "open_s")) or 0))
	else
		w(("| %s | not run | | | |"):format(NAMES[s]))
	end
end
w("")
w("Heartbeat CPU (% of one core over the window), by round; connections with a round-trip time (answered a probe) at the end:")
w("")
w("| server | % by round | median | rtt known, by round |")
w("|---|---|---:|---|")
for _, s in ipairs { "wsbeat", "wsbeat-nohb" } do
	local p = pick("cpu", s, "pct")
	if #p > 0 then
		w(("| %s | %s | %.2f | %s |"):format(NAMES[s], list(p), median(p), list(pick("cpu", s, "rtt_known"), "%d")))
	end
end
w("")
w("Broadcast, ms from just before the call until the last (first) client had the message; per round the median of its broadcasts:")
w("")
w("| server | last, by round | median | first, median | all broadcasts (last): min-max | the call itself, median "
	.. "| CPU per broadcast, server / load side (median over rounds) |")
w("|---|---|---:|---:|---|---:|---|")
for _, s in ipairs { "wsbeat-nohb", "wsbeat", "node" } do
	local per = bcast_rounds(s, "last_us")
	if #per > 0 then
		local all = {}
		for _, v in ipairs(pick("bcast", s, "last_us")) do all[#all + 1] = v / 1000 end
		local lo, hi = minmax(all)
		local k = tonumber(meta.BCASTS) or 1
		local sc, lc = median(pick("bcastcpu", s, "server_cpu_s")), median(pick("bcastcpu", s, "load_cpu_s"))
		w(("| %s | %s | %.2f | %.2f | %.2f-%.2f | %.2f | %s / %s ms |"):format(NAMES[s], list(per), median(per),
			median(bcast_rounds(s, "first_us")), lo, hi, median(pick("bcast", s, "call_us")) / 1000,
			sc and ("%.0f"):format(sc / k * 1000) or "?", lc and ("%.0f"):format(lc / k * 1000) or "?"))
	end
end
w("")
w("CPU per broadcast: the process's CPU time over the broadcasts (and the 0.3 s pauses between them) divided by")
w("their number; with heartbeat on, the heartbeat's CPU in that time is included.")
local partial = 0
for _, r in ipairs(rows) do
	if r.test == "bcast" and r.got ~= r.n then partial = partial + 1 end
end
if partial > 0 then w(""); w(("**%d broadcast(s) did not reach every connection within 10 s.**"):format(partial)) end
w("")
if #delays > 0 then
	w(("Detection, s from the stop until the last (first) of the %s connections was closed, by trial:"):format(meta.DN))
	w("")
	w("| round.trial | stop after ready (s) | all closed (s) | first closed (s) | causes |")
	w("|---|---:|---:|---:|---|")
	for _, r in ipairs(rows) do
		if r.test == "detect" then
			w(("| %s.%s | %.2f | %.3f | %.3f | %s |"):format(r.round, r.trial, r.stop_after, r.delay_s, r.first_s,
				tostring(r.causes)))
		end
	end
	w("")
end

-- load-side checks and failures
local bad = {}
for _, r in ipairs(rows) do
	if r.test == "check" and ((r.pongs or 0) > 0 or (r.lost or 0) > 0) then
		bad[#bad + 1] = ("round %s %s: load side saw %s PONG(s), lost %s connection(s)"):format(r.round, r.server,
			r.pongs, r.lost)
	elseif r.test == "fail" then
		bad[#bad + 1] = ("round %s %s: failed (%s)"):format(r.round, r.server, r.what)
	end
end
w("## Checks")
w("")
if #bad == 0 then
	w("The load side sent no PING (0 PONGs received) and lost no connection in any run; every run completed.")
else
	for _, b in ipairs(bad) do w("- " .. b) end
end
w("")
io.write(table.concat(out, "\n"), "\n")
