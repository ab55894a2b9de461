-- wsbeat demo: the `wsbeat` command stays connected while its server
-- freezes.  Starts a local echo server, runs bin/wsbeat against it with a
-- 1 s heartbeat, feeds it a line a second, freezes the server with SIGSTOP
-- (TCP stays up; only the heartbeat can tell), resumes it with SIGCONT, and
-- lets the client print every transition with its cause, the echoes and
-- the RTT.
local core = require "wsbeat.core" -- for its monotonic clock

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
	io.stderr:write(("[%5.2fs] demo: "):format(core.now() - t0), fmt:format(...), "\n")
end

local url = ("ws://127.0.0.1:%s/echo"):format(port)
say("server pid %s listening on %s", pid, url)
local cmd = ("%s/bin/wsbeat --heartbeat 1,1 --retry-delay 0.5 --connect-timeout 2 %s"):format(root, url)
say("running: %s", cmd)
local client = assert(io.popen(cmd, "w"))
client:setvbuf("line")

local n, frozen, resumed = 0, false, false
while core.now() - t0 < 14 do
	local now = core.now() - t0
	if not frozen and now > 4 then
		frozen = true
		say("SIGSTOP the server (its sockets stay open, it just stops answering)")
		os.execute("kill -STOP " .. pid)
	elseif frozen and not resumed and now > 8 then
		resumed = true
		say("SIGCONT the server")
		os.execute("kill -CONT " .. pid)
	end
	n = n + 1
	client:write(("hello #%d\n"):format(n)) -- buffered while not open, sent once
	os.execute("sleep 1")
end
say("end of input: the client closes and exits")
client:close()
os.execute("kill -CONT " .. pid .. " 2>/dev/null; kill " .. pid .. " 2>/dev/null")
os.remove(log)
