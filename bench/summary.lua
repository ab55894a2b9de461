#!/usr/bin/env lua5.4
--[[ Summarise bench/bench.sh results.

  lua5.4 bench/summary.lua RESULTS OUTDIR [HEADER-FILE]

RESULTS holds lines
  RESULT scheme=ws round=1 client=wsbeat size=32 p50_us=.. p99_us=.. msg_s=..
(one per client run; "-" marks a test that was not run). For every scheme,
size and client it takes the median over the rounds and prints a Markdown
report on stdout, also written to OUTDIR/results.md (after the text of
HEADER-FILE, if given), with each figure's ratio to the C ceiling (lws-c)
and to lua-http, the targets for wsbeat, wsbeat's throughput against node
ws and python websockets (the ratio of the medians and round by round)
and, when wsbeat-jit ran, its ratio to wsbeat (the same client on LuaJIT
and on Lua 5.4). It writes
OUTDIR/throughput.dat and OUTDIR/latency.dat and, when gnuplot is
installed, OUTDIR/benchmarks.png.
Exit status: 0, or 1 when a client produced no result for a case.
]]

local results, outdir, header = arg[1], arg[2], arg[3]
if not (results and outdir) then
	io.stderr:write("usage: lua5.4 bench/summary.lua RESULTS OUTDIR [HEADER-FILE]\n")
	os.exit(2)
end

local CEIL, LUAHTTP, US = "lws-c", "lua-http", "wsbeat"
local ORDER = { "lws-c", "wsbeat", "wsbeat-jit", "wsbeat-before", "wsbeat-recv", "lua-http", "lua-http-jit", "node-ws", "python-websockets" }

local stats = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/stats.lua")
local median, once = stats.median, stats.once

-- data[scheme][size][client][metric] = { values over rounds }
local data, schemes, sizes, clients, rounds = {}, {}, {}, {}, {}
for line in io.lines(results) do
	if line:match("^RESULT ") then
		local f = {}
		for k, v in line:gmatch("([%w_]+)=(%S+)") do f[k] = v end
		local size = tonumber(f.size)
		if f.scheme and size and f.client then
			once(schemes, f.scheme); once(sizes, size); once(clients, f.client)
			rounds[f.round or "?"] = true
			local d = data
			for _, k in ipairs { f.scheme, size, f.client } do
				d[k] = d[k] or {}
				d = d[k]
			end
			for _, m in ipairs { "p50_us", "p99_us", "msg_s" } do
				local v = tonumber(f[m])
				if v then
					d[m] = d[m] or {}
					table.insert(d[m], v)
					-- (by round too: clients of one round ran seconds apart)
					d.round = d.round or {}
					d.round[m] = d.round[m] or {}
					d.round[m][f.round or "?"] = v
				end
			end
		end
	end
end
table.sort(sizes)
table.sort(schemes)
do -- known clients first, in a fixed order; unknown ones after
	local rank = {}
	for i, c in ipairs(ORDER) do rank[c] = i end
	table.sort(clients, function(a, b)
		local ra, rb = rank[a] or 99, rank[b] or 99
		if ra ~= rb then return ra < rb end
		return a < b
	end)
end
local nrounds = 0
for _ in pairs(rounds) do nrounds = nrounds + 1 end

local function cell(scheme, size, client)
	return data[scheme] and data[scheme][size] and data[scheme][size][client]
end

local function med(scheme, size, client, m)
	local d = cell(scheme, size, client)
	return d and median(d[m])
end

local function human_size(n)
	if n >= 1 << 20 then return ("%d MiB"):format(n >> 20) end
	if n >= 1024 then return ("%d KiB"):format(n >> 10) end
	return ("%d B"):format(n)
end

local out = {}
local function w(fmt, ...) out[#out + 1] = fmt:format(...) end
local function ratio(a, b)
	if not (a and b) or b == 0 then return "" end
	return ("%.2fx"):format(a / b)
end
local function num(v, fmt)
	if not v then return "–" end
	return (fmt or "%.0f"):format(v)
end

local missing = false
local verdicts = {}
w("Medians over %d round(s). Throughput: pipelined messages per second (echoed); latency: round trip in µs.", nrounds)
w("Ratios: the figure divided by the same figure of the C ceiling (lws-c) and of lua-http.")
w("")
for _, scheme in ipairs(schemes) do
	w("### %s", scheme)
	w("")
	w("| size | client | msg/s | MiB/s each way | vs C | vs lua-http | p50 µs | p99 µs | p50 vs C | p50 vs lua-http |")
	w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, size in ipairs(sizes) do
		for _, client in ipairs(clients) do
			local r = med(scheme, size, client, "msg_s")
			local p50 = med(scheme, size, client, "p50_us")
			local p99 = med(scheme, size, client, "p99_us")
			if r or p50 then
				w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |",
					human_size(size), client, num(r), r and ("%.1f"):format(r * size / 1048576) or "–",
					ratio(r, med(scheme, size, CEIL, "msg_s")), ratio(r, med(scheme, size, LUAHTTP, "msg_s")),
					num(p50, "%.1f"), num(p99, "%.1f"),
					ratio(p50, med(scheme, size, CEIL, "p50_us")), ratio(p50, med(scheme, size, LUAHTTP, "p50_us")))
			elseif data[scheme] and data[scheme][size] then
				missing = true
			end
		end
		-- the targets, for wsbeat
		local r, rc, rl = med(scheme, size, US, "msg_s"), med(scheme, size, CEIL, "msg_s"), med(scheme, size, LUAHTTP, "msg_s")
		local l, lc, ll = med(scheme, size, US, "p50_us"), med(scheme, size, CEIL, "p50_us"), med(scheme, size, LUAHTTP, "p50_us")
		local function check(name, v, ok)
			if v then
				verdicts[#verdicts + 1] = ("| %s %s | %s | %.2fx | %s |"):format(scheme, human_size(size), name, v, ok(v) and "met" or "**missed**")
			end
		end
		check("throughput vs C ≥ 0.8x", r and rc and r / rc, function(v) return v >= 0.8 end)
		check("throughput vs lua-http ≥ 2x", r and rl and r / rl, function(v) return v >= 2 end)
		check("p50 latency vs C ≤ 1.25x", l and lc and l / lc, function(v) return v <= 1.25 end)
		check("p50 latency vs lua-http ≤ 1x", l and ll and l / ll, function(v) return v <= 1 end)
	end
	w("")
end
if #verdicts > 0 then
	w("### Targets (wsbeat)")
	w("")
	w("| case | target | ratio | |")
	w("|---|---|---:|---|")
	for _, v in ipairs(verdicts) do w("%s", v) end
	w("")
end
-- wsbeat's throughput against node ws and python websockets: the ratio of
-- the medians (the target: at least 1), and the same ratio round by round.
-- On a VM whose speed drifts between rounds, two clients that ran seconds
-- apart in one round compare better than medians of rounds minutes apart;
-- "rounds ahead" tells a lead from a tie.
local PEERS = { "node-ws", "python-websockets" }
local peer_rows = {}
local function per_round(scheme, size, a, b)
	local da, db = cell(scheme, size, a), cell(scheme, size, b)
	local ra = da and da.round and da.round.msg_s
	local rb = db and db.round and db.round.msg_s
	local list, ahead = {}, 0
	if not (ra and rb) then return list, 0 end
	for round, v in pairs(ra) do
		if rb[round] and rb[round] > 0 then
			list[#list + 1] = v / rb[round]
			if v >= rb[round] then ahead = ahead + 1 end
		end
	end
	table.sort(list)
	return list, ahead
end
for _, scheme in ipairs(schemes) do
	for _, size in ipairs(sizes) do
		local r = med(scheme, size, US, "msg_s")
		for _, peer in ipairs(PEERS) do
			local rp = med(scheme, size, peer, "msg_s")
			if r and rp and rp > 0 then
				local list, ahead = per_round(scheme, size, US, peer)
				peer_rows[#peer_rows + 1] = ("| %s %s | %s | %.2fx | %s | %d of %d | %s |"):format(
					scheme, human_size(size), peer, r / rp,
					#list > 0 and ("%.2fx-%.2fx"):format(list[1], list[#list]) or "–",
					ahead, #list, r >= rp and "met" or "**missed**")
			end
		end
	end
end
if #peer_rows > 0 then
	w("### wsbeat's throughput against node ws and python websockets")
	w("")
	w("Target: the ratio of the medians at least 1. Per round: wsbeat's msg/s over the other's in the same round.")
	w("")
	w("| case | against | ratio of medians | per round, lowest-highest | rounds ahead | |")
	w("|---|---|---:|---:|---:|---|")
	for _, row in ipairs(peer_rows) do w("%s", row) end
	w("")
end
-- the same client on LuaJIT against Lua 5.4, when both ran
local JIT = "wsbeat-jit"
local jit_rows = {}
for _, scheme in ipairs(schemes) do
	for _, size in ipairs(sizes) do
		local r, rj = med(scheme, size, US, "msg_s"), med(scheme, size, JIT, "msg_s")
		local l, lj = med(scheme, size, US, "p50_us"), med(scheme, size, JIT, "p50_us")
		if (r and rj) or (l and lj) then
			jit_rows[#jit_rows + 1] = ("| %s %s | %s | %s |"):format(scheme, human_size(size),
				ratio(rj, r), ratio(lj, l))
		end
	end
end
if #jit_rows > 0 then
	w("### wsbeat-jit vs wsbeat (LuaJIT / Lua 5.4)")
	w("")
	w("| case | msg/s | p50 |")
	w("|---|---:|---:|")
	for _, row in ipairs(jit_rows) do w("%s", row) end
	w("")
end
local report = table.concat(out, "\n") .. "\n"
io.write(report)

os.execute("mkdir -p '" .. outdir .. "'")
local f = assert(io.open(outdir .. "/results.md", "w"))
if header then
	local h = io.open(header)
	if h then f:write(h:read("a"), "\n"); h:close() end
end
f:write(report)
f:close()

-- gnuplot data: one row per case, one column per client ("NaN" when absent)
local function datfile(name, metric, want)
	local fh = assert(io.open(outdir .. "/" .. name, "w"))
	fh:write("case")
	for _, c in ipairs(clients) do fh:write("\t", c) end
	fh:write("\n")
	local rows = 0
	for _, scheme in ipairs(schemes) do
		for _, size in ipairs(sizes) do
			if want(size) then
				fh:write(('"%s %s"'):format(scheme, human_size(size):gsub(" ", "")))
				for _, c in ipairs(clients) do
					local v = med(scheme, size, c, metric)
					fh:write("\t", v and ("%.3f"):format(v) or "NaN")
				end
				fh:write("\n")
				rows = rows + 1
			end
		end
	end
	fh:close()
	return rows
end
local nt = datfile("throughput.dat", "msg_s", function() return true end)
local nl = datfile("latency.dat", "p50_us", function(size) return size <= 4096 end)

if os.execute("command -v gnuplot >/dev/null 2>&1") and nt > 0 then
	local ncol = #clients + 1
	local plot = ([[
set terminal pngcairo size 1200,900 font "sans,10"
set output "%s/benchmarks.png"
set multiplot layout 2,1 title "wsbeat echo benchmark (medians; same server, same run)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set key outside right top vertical
set grid ytics
set logscale y
set ylabel "messages/s (log)"
set title "pipelined throughput"
plot for [i=2:%d] "%s/throughput.dat" using i:xtic(1) title columnheader(i)
]]):format(outdir, ncol, outdir)
	if nl > 0 then
		plot = plot .. ([[
unset logscale y
set ylabel "p50 round trip, µs"
set title "latency"
plot for [i=2:%d] "%s/latency.dat" using i:xtic(1) title columnheader(i)
]]):format(ncol, outdir)
	end
	plot = plot .. "unset multiplot\n"
	local gp = assert(io.popen("gnuplot", "w"))
	gp:write(plot)
	gp:close()
end

os.exit(missing and 1 or 0)
