--[[ wsbeat direct and through each proxy, side by side in one run.

  make bench-proxy            (or: lua5.4 bench/proxy.lua [ROUNDS])

Starts the nginx echo server (bench/nginx-echo.sh) and tinyproxy,
microsocks and dante on loopback (spec/proxies.lua), then, ROUNDS times
(default 5) in turn, runs the wsbeat bench client (bench/clients/
lua-client.lua) over ws and wss, 32 B messages, direct and through each
proxy: the p50/p99 round trip of one message in flight and the pipelined
rate; and the time from connect() to "open" (median of 50 sequential
connections). Prints a Markdown table of medians over the rounds and the
ratio of each to direct in the same rounds.
]]

local HERE = ((arg and arg[0] or "bench/proxy.lua"):match("^(.*)/[^/]*$") or ".")
local ROOT = HERE .. "/.."
package.path = ("%s/lua/?.lua;%s/lua/?/init.lua;%s/spec/?.lua;%s"):format(ROOT, ROOT, ROOT, package.path)
package.cpath = ("%s/build/?.so;%s"):format(ROOT, package.cpath)

local P = require "proxies"
local H = require "helper"
local wsbeat = require "wsbeat"
local core = require "wsbeat.core"

local ROUNDS = tonumber(arg[1]) or 5
local N, K, W, SIZE = 2000, 20000, 64, 32
local CONNECTS = 50

local function median(t)
	table.sort(t)
	if #t == 0 then return nil end
	local m = (#t + 1) / 2
	return (t[math.floor(m)] + t[math.ceil(m)]) / 2
end

-- the nginx echo server
local dir = H.tmpdir() .. "/bench-nginx"
local out = H.sh(("sh %s/nginx-echo.sh %s"):format(HERE, dir))
local ws_port, wss_port = out:match("PORT (%d+) (%d+)")
assert(ws_port, "nginx did not start: " .. out)
local ca = dir .. "/ca.pem"

local proxies = {
	{ name = "tinyproxy (http)", px = P.tinyproxy {}, scheme = "http" },
	{ name = "microsocks (socks5h)", px = P.microsocks {}, scheme = "socks5h" },
	{ name = "dante (socks5h)", px = P.dante {}, scheme = "socks5h" },
}
local routes = { { name = "direct" } }
for _, p in ipairs(proxies) do
	routes[#routes + 1] = { name = p.name, url = p.px:url { scheme = p.scheme } }
end
-- the C ceiling (bench/lws-client.c, lws's default loop) direct and through
-- tinyproxy with lws's own CONNECT (it reads http_proxy): how much of the
-- cost of a proxy is the extra hop, and how much wsbeat's relay adds
local LWS_C = ROOT .. "/build/bench/lws-client"
routes[#routes + 1] = { name = "lws C client, direct", c = true }
routes[#routes + 1] = { name = "lws C client, tinyproxy (lws's CONNECT)", c = true,
	http_proxy = proxies[1].px:url(), base = "lws C client, direct" }

local function stop()
	P.stop_all()
	os.execute(("kill $(cat %s/nginx.pid) 2>/dev/null"):format(dir))
end

local function client(route, url)
	local res
	if route.c then
		res = H.sh(("%s %s %s %d %d %d %d %s 2>&1"):format(
			route.http_proxy and ("http_proxy='%s'"):format(route.http_proxy) or "",
			LWS_C, url, SIZE, N, K, W, ca))
	else
		local env = route.url and ("WSBEAT_BENCH_PROXY='%s' "):format(route.url) or ""
		res = H.sh(("%s lua5.4 %s/clients/lua-client.lua wsbeat %s %d %d %d %d %s 2>&1")
			:format(env, HERE, url, SIZE, N, K, W, ca))
	end
	local p50, p99, rate = res:match("p50_us=(%S+) p99_us=(%S+) msg_s=(%S+)")
	if not p50 then
		stop()
		error(route.name .. ": " .. res)
	end
	return tonumber(p50), tonumber(p99), tonumber(rate)
end

-- median seconds from connect() to "open", CONNECTS connections in a row
local function connect_time(route, url)
	local times = {}
	for _ = 1, CONNECTS do
		local t0 = core.now()
		local opened
		local ws = wsbeat.connect(url, {
			proxy = route.url or false, reconnect = false, heartbeat = false,
			tls = url:match("^wss") and { ca_file = ca } or nil,
			on_state = function(_, st, info)
				if st == "open" then opened = core.now() end
				if st == "closed" and not opened then error(route.name .. ": " .. info.reason) end
			end,
		})
		while not opened do
			core.wait(0.05)
			wsbeat.step()
		end
		times[#times + 1] = opened - t0
		ws:close()
		wsbeat.run(5)
	end
	return median(times)
end

local results = {} -- results[scheme][route] = { p50 = {...}, ... }
for r = 1, ROUNDS do
	io.stderr:write(("round %d/%d\n"):format(r, ROUNDS))
	for _, scheme in ipairs { "ws", "wss" } do
		local url = ("%s://localhost:%s/echo"):format(scheme, scheme == "ws" and ws_port or wss_port)
		results[scheme] = results[scheme] or {}
		for _, route in ipairs(routes) do
			local acc = results[scheme][route.name] or { p50 = {}, p99 = {}, rate = {}, open = {}, ratio = {} }
			results[scheme][route.name] = acc
			local p50, p99, rate = client(route, url)
			acc.p50[#acc.p50 + 1] = p50
			acc.p99[#acc.p99 + 1] = p99
			acc.rate[#acc.rate + 1] = rate
			if not route.c then acc.open[#acc.open + 1] = connect_time(route, url) end
			-- ratio to direct of the same round (the C client's to its own)
			local d = results[scheme][route.c and "lws C client, direct" or "direct"]
			acc.ratio[#acc.ratio + 1] = {
				p50 = p50 / d.p50[#d.p50], rate = rate / d.rate[#d.rate],
				open = not route.c and acc.open[#acc.open] / d.open[#d.open] or nil,
			}
		end
	end
end
stop()

print(("wsbeat direct and through proxies, nginx + lua-resty-websocket echo, %d B, "
	.. "%d rounds (medians; ratios to direct in the same round, median)"):format(SIZE, ROUNDS))
print()
print("| route | p50 us | p99 us | msg/s | open ms | p50 vs direct | msg/s vs direct | open vs direct |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for _, scheme in ipairs { "ws", "wss" } do
	for _, route in ipairs(routes) do
		local a = results[scheme][route.name]
		local rp, rr, ro = {}, {}, {}
		for _, x in ipairs(a.ratio) do
			rp[#rp + 1], rr[#rr + 1], ro[#ro + 1] = x.p50, x.rate, x.open
		end
		local open, ropen = median(a.open), median(ro)
		print(("| %s %s | %.0f | %.0f | %.0f | %s | %.2fx | %.2fx | %s |"):format(scheme, route.name,
			median(a.p50), median(a.p99), median(a.rate), open and ("%.2f"):format(open * 1000) or "-",
			median(rp), median(rr), ropen and ("%.2fx"):format(ropen) or "-"))
	end
end
