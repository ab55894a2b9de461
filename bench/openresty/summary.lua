#!/usr/bin/env lua5.4
--[[ Summarise bench/openresty.sh results.

  lua5.4 bench/openresty/summary.lua RESULTS OUTDIR [HEADER-FILE]

RESULTS holds the lines openresty.sh writes:
  RESULT round=1 config=wsbeat-socket size=32 n=.. k=.. w=.. p50_us=.. p99_us=.. msg_s=..
         idle_s=.. cpu_ms_s=.. sched_ms_s=.. wakeups_s=.. csw_s=.. wake=socket errors=0
  FAILED round=1 config=resty reason=...
For every configuration it takes the median over the rounds of each
figure, and prints a Markdown table on stdout, also written to
OUTDIR/summary.md (after the text of HEADER-FILE, if given), with the
msg/s and p50 ratios to wsbeat-socket, the baseline. A configuration that
ran in no round is shown as such, never left out.
Exit status 0, 1 when a configuration has no result, 2 on bad usage.
]]

local results, outdir, header = arg[1], arg[2], arg[3]
if not (results and outdir) then
	io.stderr:write("usage: lua5.4 bench/openresty/summary.lua RESULTS OUTDIR [HEADER-FILE]\n")
	os.exit(2)
end

local BASE = "wsbeat-socket"
local ORDER = { "wsbeat-socket", "wsbeat-poll-10ms", "wsbeat-poll-1ms", "resty" }
local LABEL = {
	["wsbeat-socket"] = "wsbeat, wake=socket",
	["wsbeat-poll-10ms"] = "wsbeat, wake=poll, interval 0.01",
	["wsbeat-poll-1ms"] = "wsbeat, wake=poll, interval 0.001",
	["resty"] = "lua-resty-websocket client",
}
local METRICS = { "p50_us", "p99_us", "msg_s", "cpu_ms_s", "sched_ms_s", "wakeups_s", "csw_s" }

local stats = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../stats.lua")
local median, once = stats.median, stats.once

local data, configs, rounds, failed, odd = {}, {}, {}, {}, {}
for _, c in ipairs(ORDER) do data[c] = {} end
for line in io.lines(results) do
	local kind = line:match("^(%u+) ")
	if kind == "RESULT" or kind == "FAILED" then
		local f = {}
		for k, v in line:gmatch("([%w_]+)=(%S+)") do f[k] = v end
		local c = f.config
		if c then
			once(configs, c)
			data[c] = data[c] or {}
			rounds[f.round or "?"] = true
			if kind == "FAILED" then
				failed[c] = (failed[c] or 0) + 1
			else
				for _, m in ipairs(METRICS) do
					local v = tonumber(f[m])
					if v then
						data[c][m] = data[c][m] or {}
						table.insert(data[c][m], v)
					end
				end
				-- a wsbeat loop that fell back to polling, or logged callback errors
				if c:match("^wsbeat") then
					local want = c == "wsbeat-socket" and "socket" or "poll"
					if f.wake ~= want then
						odd[#odd + 1] = ("- %s, round %s: the loop ran with wake=%s"):format(c, f.round, tostring(f.wake))
					end
					if f.errors and f.errors ~= "0" then
						odd[#odd + 1] = ("- %s, round %s: %s callback error(s) logged"):format(c, f.round, f.errors)
					end
				end
			end
		end
	end
end
local shown = {}
for _, c in ipairs(ORDER) do
	for _, x in ipairs(configs) do if x == c then shown[#shown + 1] = c end end
end
for _, c in ipairs(configs) do once(shown, c) end

local nrounds = 0
for _ in pairs(rounds) do nrounds = nrounds + 1 end

local function fmt(v, p)
	if v == nil then return "–" end
	return ("%." .. (p or 0) .. "f"):format(v)
end
local function ratio(a, b)
	if not a or not b or b == 0 then return "" end
	return ("%.2fx"):format(a / b)
end

local out = {}
local function say(s) out[#out + 1] = s or "" end
say(("Medians over %d round(s). Ratios: the figure divided by the same figure of %s (the baseline, run in the same command)."):format(nrounds, BASE))
say()
say("| configuration | p50 µs | p99 µs | p50 vs socket | msg/s | msg/s vs socket"
	.. " | idle CPU ms/s (utime+stime) | idle CPU ms/s (schedstat) | idle loop wake-ups/s | idle thread wake-ups/s |")
say("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
local base = {}
for _, m in ipairs(METRICS) do base[m] = median(data[BASE] and data[BASE][m]) end
local status = 0
for _, c in ipairs(shown) do
	local d = data[c] or {}
	local med = {}
	for _, m in ipairs(METRICS) do med[m] = median(d[m]) end
	local label = LABEL[c] or c
	if failed[c] then label = ("%s (failed in %d round(s))"):format(label, failed[c]) end
	if not med.msg_s then
		status = 1
		say(("| %s | no result | | | | | | | | |"):format(label))
	else
		say(("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |"):format(label,
			fmt(med.p50_us, 1), fmt(med.p99_us, 1), ratio(med.p50_us, base.p50_us),
			fmt(med.msg_s), ratio(med.msg_s, base.msg_s),
			fmt(med.cpu_ms_s, 2), fmt(med.sched_ms_s, 3),
			fmt(med.wakeups_s, 1), fmt(med.csw_s, 1)))
	end
end
say()
say("Latency: round trips of one message, one in flight; wsbeat sends the next from on_message.")
say("Throughput: pipelined messages per second; wsbeat keeps a sliding window refilled from on_message,")
say("lua-resty-websocket sends a window's frames and then receives as many, repeated (one cosocket: one light")
say("thread cannot read and write at once). Idle: the connected, quiet client (wsbeat's default heartbeat of 20 s;")
say("resty in recv_frame with a 20 s timeout), measured from outside the worker: utime+stime counts 10 ms ticks,")
say("schedstat is the ns sum over the worker's threads; loop wake-ups are wsbeat.openresty.stats().wakeups")
say("(resty: returns of recv_frame); thread wake-ups are the voluntary context switches of all the worker's threads")
say("(nginx's and, with wake=socket, the waker's).")
if #odd > 0 then
	say()
	say("Odd:")
	for _, l in ipairs(odd) do say(l) end
end
local text = table.concat(out, "\n") .. "\n"
io.write(text)

local f = assert(io.open(outdir .. "/summary.md", "w"))
if header then
	local h = io.open(header)
	if h then f:write(h:read("a")); h:close() end
end
f:write(text)
f:close()
os.exit(status)
