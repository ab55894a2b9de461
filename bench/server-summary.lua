#!/usr/bin/env lua5.4
--[[ Summarise bench/server-bench.sh results.

  lua5.4 bench/server-summary.lua RESULTS OUTDIR [HEADER-FILE]

RESULTS holds the lines server-bench.sh writes:
  SERVERS lws wsbeat node python          (the servers asked for, in order)
  RESULT scheme=ws round=1 server=lws size=32 p50_us=.. p99_us=.. msg_s=.. cpu_us=..
  FAILED scheme=ws round=1 server=lws size=32 reason=...
  SKIPPED scheme=ws round=1 server=wsbeat size=32 reason=...
("-" marks a test that was not run). For every scheme, size and server it
takes the median over the rounds and prints a Markdown report on stdout,
also written to OUTDIR/summary.md (after the text of HEADER-FILE, if
given): one table per scheme, rows = sizes, one column per server (p50
round trip and pipelined msg/s) and one per server other than lws with its
ratios to lws, the C ceiling; then the p99 round trips and the servers'
CPU per echoed message (cpu_us). A server asked for but with no figures is
shown as such, never left out. Exit status 0, or 2 on bad usage.
]]

local results, outdir, header = arg[1], arg[2], arg[3]
if not (results and outdir) then
	io.stderr:write("usage: lua5.4 bench/server-summary.lua RESULTS OUTDIR [HEADER-FILE]\n")
	os.exit(2)
end

local CEIL = "lws"
local ORDER = { "lws", "wsbeat", "node", "python" }

local stats = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/stats.lua")
local median, once = stats.median, stats.once


-- cell[scheme][size][server] = { p50_us = {..}, p99_us = {..}, msg_s = {..}, cpu_us = {..}, ok = n, failed = n,
-- skipped = reason }
local cell, schemes, sizes, servers, rounds = {}, {}, {}, {}, {}
local problems = {} -- lines for the "not run / failed" list
local function get(scheme, size, server)
	cell[scheme] = cell[scheme] or {}
	cell[scheme][size] = cell[scheme][size] or {}
	local c = cell[scheme][size][server]
	if not c then
		c = { p50_us = {}, p99_us = {}, msg_s = {}, cpu_us = {}, ok = 0, failed = 0 }
		cell[scheme][size][server] = c
	end
	return c
end

for line in io.lines(results) do
	local kind, rest = line:match("^(%u+) (.*)$")
	if kind == "SERVERS" then
		for s in rest:gmatch("%S+") do once(servers, s) end
	elseif kind == "RESULT" or kind == "FAILED" or kind == "SKIPPED" then
		local f = {}
		local head, reason = rest:match("^(.-) reason=(.*)$")
		for k, v in (head or rest):gmatch("([%w_]+)=(%S+)") do f[k] = v end
		local size = tonumber(f.size)
		if f.scheme and size and f.server then
			once(schemes, f.scheme); once(sizes, size); once(servers, f.server)
			rounds[f.round or "?"] = true
			local c = get(f.scheme, size, f.server)
			if kind == "RESULT" then
				c.ok = c.ok + 1
				for _, m in ipairs { "p50_us", "p99_us", "msg_s", "cpu_us" } do
					local v = tonumber(f[m])
					if v then table.insert(c[m], v) end
				end
			elseif kind == "FAILED" then
				c.failed = c.failed + 1
				problems[#problems + 1] = ("- %s %s %s, round %s: client run failed: %s")
					:format(f.server, f.scheme, f.size, f.round or "?", reason or "?")
			else
				c.skipped = reason or "not run"
			end
		end
	end
end
table.sort(sizes)
do -- ws before wss, known servers first in a fixed order, unknown after
	table.sort(schemes)
	local rank = {}
	for i, s in ipairs(ORDER) do rank[s] = i end
	local asked = {}
	for i, s in ipairs(servers) do asked[s] = i end
	table.sort(servers, function(a, b)
		local ra, rb = rank[a] or 99, rank[b] or 99
		if ra ~= rb then return ra < rb end
		return asked[a] < asked[b]
	end)
end
local nrounds = 0
for _ in pairs(rounds) do nrounds = nrounds + 1 end

local function med(scheme, size, server, m)
	local c = cell[scheme] and cell[scheme][size] and cell[scheme][size][server]
	return c and median(c[m])
end

local function human_size(n)
	if n >= 1 << 20 and n % (1 << 20) == 0 then return ("%d MiB"):format(n >> 20) end
	if n >= 1024 and n % 1024 == 0 then return ("%d KiB"):format(n >> 10) end
	return ("%d B"):format(n)
end

local function thousands(v) -- 1234567 -> "1,234,567"
	local s = ("%.0f"):format(v)
	local n
	repeat s, n = s:gsub("^(%d+)(%d%d%d)", "%1,%2") until n == 0
	return s
end
local function us(v)
	if not v then return "–" end
	if v < 1000 then return ("%.1f µs"):format(v) end
	return thousands(v) .. " µs"
end
local function rate(v)
	if not v then return "–" end
	if v < 100 then return ("%.1f/s"):format(v) end
	return thousands(v) .. "/s"
end
local function ratio(a, b)
	if not (a and b) or b == 0 then return "–" end
	return ("%.2fx"):format(a / b)
end

-- what a cell says when there are no figures
local function absent(c)
	if not c then return "not run" end
	if c.skipped and c.ok == 0 then return "**not run**" end
	if c.ok == 0 then return "**failed**" end
end

local out = {}
local function w(fmt, ...) out[#out + 1] = fmt:format(...) end

w("Medians over %d round(s). Each cell: p50 round trip (one message in flight) · pipelined messages echoed per second.", nrounds)
-- LOAD names the load client (server-bench.sh): the two C ones by their
-- file, wsbeat's and node's as their bench clients
local load = os.getenv("LOAD") or "epoll"
local LOAD_NAME = { lws = "bench/lws-client.c", epoll = "bench/epoll-client.c" }
w(("Every figure comes from the same load client (%s); only the server differs."):format(
	LOAD_NAME[load] or load .. "'s bench client"))
w("Ratio columns: the server's figure divided by lws's (the C ceiling, bench/lws-server.c), latency · throughput;")
w("latency above 1.00x is slower than lws, throughput below 1.00x is slower than lws. (k/n): figures from k of n rounds.")
w("")
for _, scheme in ipairs(schemes) do
	w("### %s", scheme)
	w("")
	local cols, align = { "size" }, { "---" }
	for _, s in ipairs(servers) do
		cols[#cols + 1] = s == CEIL and s .. " (C ceiling)" or s
		align[#align + 1] = "---:"
	end
	for _, s in ipairs(servers) do
		if s ~= CEIL then
			cols[#cols + 1] = s .. "/" .. CEIL
			align[#align + 1] = "---:"
		end
	end
	w("| %s |", table.concat(cols, " | "))
	w("|%s|", table.concat(align, "|"))
	for _, size in ipairs(sizes) do
		local row = { human_size(size) }
		for _, s in ipairs(servers) do
			local c = cell[scheme][size] and cell[scheme][size][s]
			local a = absent(c)
			if a then
				row[#row + 1] = a
			else
				local partial = c.ok < nrounds and (" (%d/%d)"):format(c.ok, nrounds) or ""
				row[#row + 1] = ("%s · %s%s"):format(us(median(c.p50_us)), rate(median(c.msg_s)), partial)
			end
		end
		local l0, r0 = med(scheme, size, CEIL, "p50_us"), med(scheme, size, CEIL, "msg_s")
		for _, s in ipairs(servers) do
			if s ~= CEIL then
				local c = cell[scheme][size] and cell[scheme][size][s]
				if absent(c) then
					row[#row + 1] = "–"
				else
					row[#row + 1] = ("%s · %s"):format(ratio(med(scheme, size, s, "p50_us"), l0),
						ratio(med(scheme, size, s, "msg_s"), r0))
				end
			end
		end
		w("| %s |", table.concat(row, " | "))
	end
	w("")
end

-- one row per case (scheme and size), one column per server: metric's median
local function case_table(metric)
	local cols, align = { "case" }, { "---" }
	for _, s in ipairs(servers) do cols[#cols + 1] = s; align[#align + 1] = "---:" end
	w("| %s |", table.concat(cols, " | "))
	w("|%s|", table.concat(align, "|"))
	for _, scheme in ipairs(schemes) do
		for _, size in ipairs(sizes) do
			local row = { scheme .. " " .. human_size(size) }
			for _, s in ipairs(servers) do
				local c = cell[scheme][size] and cell[scheme][size][s]
				row[#row + 1] = absent(c) or us(median(c[metric]))
			end
			w("| %s |", table.concat(row, " | "))
		end
	end
	w("")
end

-- p99, more for the record than for comparison (few samples at 1 MiB)
w("### p99 round trip")
w("")
case_table("p99_us")

-- what each message cost the server: a server that waits for the load
-- client (idle part of the time) scores lower throughput than one that is
-- busy all along and so never has to be woken; this says which is which
w("### Server CPU per echoed message")
w("")
w("The server's user + system CPU over the load client's run (both phases), divided by the messages it echoed.")
w("")
case_table("cpu_us")

-- servers asked for that have no figures somewhere: say so, once per server
do
	local lines = {}
	for _, s in ipairs(servers) do
		local reasons, where = {}, {}
		for _, scheme in ipairs(schemes) do
			local none = false
			for _, size in ipairs(sizes) do
				local c = cell[scheme][size] and cell[scheme][size][s]
				if not c then
					none = true
					once(reasons, "no result")
				elseif c.skipped then
					none = true
					once(reasons, c.skipped)
				end
			end
			if none then where[#where + 1] = scheme end
		end
		if #where > 0 then
			lines[#lines + 1] = ("- **%s** (%s): %s"):format(s, table.concat(where, ", "), table.concat(reasons, "; "))
		end
	end
	for _, p in ipairs(problems) do lines[#lines + 1] = p end
	if #lines > 0 then
		w("### Not run or failed")
		w("")
		for _, l in ipairs(lines) do w("%s", l) end
		w("")
	end
end

local report = table.concat(out, "\n") .. "\n"
io.write(report)

os.execute("mkdir -p '" .. outdir .. "'")
local f = assert(io.open(outdir .. "/summary.md", "w"))
if header then
	local h = io.open(header)
	if h then f:write(h:read("a"), "\n"); h:close() end
end
f:write(report)
f:close()
os.exit(0)
