-- wsbeat demo: a client that stays connected while its server freezes.
-- Starts a local echo server, connects with a 1 s heartbeat, freezes the
-- server with SIGSTOP (TCP stays up; only the heartbeat can tell), resumes
-- it, and prints every transition with its cause, the echoes and the RTT.
local wsbeat = require "wsbeat"
local core = require "wsbeat.core"

local root = arg[1] or "."
local function sh(cmd)
	local p = assert(io.popen(cmd))
	local s = p:read("a")
	p:close()
	return (s:gsub("%s+$", ""))
end

local log = os.tmpname()
local pid = sh(("sh -c 'exec /usr/bin/python3 %s/spec/fixtures/server.py --port 0 >%s 2>&1' </dev/null & echo $!")
	:format(root, log))
local port
for _ = 1, 200 do
	local f = io.open(log)
	port = f and f:read("l")
	if f then f:close() end
	port = port and port:match("^PORT (%d+)")
	if port then break end
	os.execute("sleep 0.05")
end
assert(port, "the demo server did not start")

local t0 = core.now()
local function say(fmt, ...)
	io.write(("[%5.2fs] "):format(core.now() - t0), fmt:format(...), "\n")
	io.flush()
end

local url = ("ws://127.0.0.1:%s/echo"):format(port)
say("server pid %s listening on %s", pid, url)
local ws = wsbeat.connect(url, {
	heartbeat = { interval = 1, timeout = 1 },
	reconnect = { delay = 0.5, max_delay = 2, jitter = 0.2 },
	connect_timeout = 2,
	on_state = function(_, state, info)
		local extra = ""
		if info.delay then extra = (" next attempt %d in %.2fs"):format(info.attempt, info.delay) end
		say("state %-12s cause=%s (%s)%s", state, info.cause, info.reason, extra)
	end,
	on_message = function(ws, data)
		local rtt = ws:stats().rtt
		say("echo  %-14s rtt=%s", data, rtt and ("%.3f ms"):format(rtt * 1000) or "n/a")
	end,
})

local n, frozen, resumed = 0, false, false
local next_send = core.now() + 0.5
while core.now() - t0 < 14 do
	local now = core.now() - t0
	if not frozen and now > 4 then
		frozen = true
		say("demo: SIGSTOP the server (its sockets stay open, it just stops answering)")
		os.execute("kill -STOP " .. pid)
	elseif frozen and not resumed and now > 8 then
		resumed = true
		say("demo: SIGCONT the server")
		os.execute("kill -CONT " .. pid)
	end
	if core.now() >= next_send then
		n = n + 1
		ws:send("hello #" .. n) -- buffered while not open, sent once
		next_send = core.now() + 1
	end
	local t = wsbeat.timeout()
	if not t or t > 0.1 then t = 0.1 end
	core.wait(t)
	wsbeat.step()
end
ws:close(1000, "demo over")
wsbeat.run(3)
local s = ws:stats()
say("done: sent %d, received %d, reconnects %d", s.messages_sent, s.messages_received, s.reconnects)
os.execute("kill -CONT " .. pid .. " 2>/dev/null; kill " .. pid .. " 2>/dev/null")
os.remove(log)
