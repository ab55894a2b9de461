#!/usr/bin/env lua5.4
--[[ The wsbeat server of the server scale benchmark (bench/server-scale.sh).

  lua5.4 bench/server-scale.lua [--heartbeat INTERVAL TIMEOUT | --no-heartbeat]
                                [--max N]

Listens on a free 127.0.0.1 port and prints "listening PORT". Every
connection is held open and idle; the one to path "/ctl" is the control
channel of the load side (bench/server-scale-hold.c), which sends:

  "gc"      a full garbage collection (twice), answered "gc done"
  "b SEQ"   broadcast one 64-byte text starting "B<SEQ> " to every open
            connection with server:broadcast(); prints
            "bcast SEQ T0 T1 COUNT": T0 just before the call, T1 just after
            (the messages leave when the callback returns, at the end of
            this step), COUNT what broadcast() returned
  "stats"   prints "stats open=.. rtt_known=.. ...": how many connections
            have a round-trip time, i.e. have answered a heartbeat probe

Every time the count of open connections (the control one not counted)
falls to 0, it prints "zero T FIRST CLOSED causes=CAUSE:COUNT,...": T when
the last one closed, FIRST when the first of them closed.

Times are CLOCK_MONOTONIC in microseconds (wsbeat.core.now() is libuv's
uv_hrtime()), the clock of the load side. Runs until killed.
]]

local ROOT = ((arg[0]):match("^(.*)/[^/]*/[^/]*$") or ".")
package.path = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;" .. package.path
package.cpath = ROOT .. "/build/?.so;" .. package.cpath
local wsbeat = require "wsbeat"
local now = require("wsbeat.core").now

local heartbeat = { interval = 5, timeout = 5 }
local max = 10000
local i = 1
while arg[i] do
	local a = arg[i]
	if a == "--heartbeat" then
		heartbeat = { interval = assert(tonumber(arg[i + 1]), "--heartbeat I T"),
			timeout = assert(tonumber(arg[i + 2]), "--heartbeat I T") }
		i = i + 2
	elseif a == "--no-heartbeat" then heartbeat = false
	elseif a == "--max" then max = assert(math.tointeger(tonumber(arg[i + 1])), "--max N"); i = i + 1
	else io.stderr:write("server-scale.lua: unknown argument ", a, "\n"); os.exit(2) end
	i = i + 1
end

local function us(t) return ("%.0f"):format(t * 1e6) end
local function out(...) io.write(...); io.write("\n"); io.flush() end

local ctl              -- the control connection
local open_n = 0       -- open connections, ctl not counted
local first_close      -- when the first of the current batch of closes happened
local closed_n, causes = 0, {}
local server

local PAD = ("x"):rep(64)
local function handle(cmd)
	if cmd == "gc" then
		collectgarbage(); collectgarbage()
		ctl:send("gc done")
	elseif cmd:match("^b %d+$") then
		local seq = cmd:sub(3)
		local msg = ("B" .. seq .. " " .. PAD):sub(1, 64)
		local t0 = now()
		local count = server:broadcast(msg)
		local t1 = now()
		out("bcast ", seq, " ", us(t0), " ", us(t1), " ", tostring(count))
	elseif cmd == "stats" then
		local n, rtt = 0, 0
		for conn in server:clients() do
			n = n + 1
			if conn:stats().rtt then rtt = rtt + 1 end
		end
		local s = server:stats()
		out(("stats open=%d rtt_known=%d connections=%d accepted=%d upgraded=%d"):format(
			n, rtt, s.connections, s.accepted, s.upgraded))
	end
end

local opts = {
	port = 0,
	max_connections = max,
	heartbeat = heartbeat,
	handshake_timeout = 30,
	on_open = function(conn)
		if conn:request().path == "/ctl" then
			ctl = conn
		else
			open_n = open_n + 1
		end
	end,
	on_state = function(conn, state, info)
		if state ~= "closed" or info.previous == nil then return end
		if conn == ctl then ctl = nil; return end
		open_n = open_n - 1
		closed_n = closed_n + 1
		first_close = first_close or now()
		causes[info.cause or "?"] = (causes[info.cause or "?"] or 0) + 1
		if open_n == 0 then
			local list = {}
			for k, v in pairs(causes) do list[#list + 1] = k .. ":" .. v end
			table.sort(list)
			out("zero ", us(now()), " ", us(first_close), " ", closed_n, " causes=", table.concat(list, ","))
			first_close, closed_n, causes = nil, 0, {}
		end
	end,
	on_message = function(conn, data)
		if conn == ctl then handle(data) end
	end,
}

server = assert(wsbeat.listen(opts))
collectgarbage(); collectgarbage()
out("listening ", server:port())
wsbeat.run()
