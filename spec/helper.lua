-- Test helper: real WebSocket peers on loopback, certificates made at test
-- time, and a run_until() that drives wsbeat's loop.
local json = require "dkjson"
local wsbeat = require "wsbeat"
local core = require "wsbeat.core"

local H = {}

-- Upper bounds and waits scale with this: valgrind runs the engine 10-50x
-- slower (make check-memory sets WSBEAT_UNDER_VALGRIND). Lower bounds,
-- which come from the protocol, never scale.
H.SLOW = tonumber(os.getenv("WSBEAT_SLOW")) or (os.getenv("WSBEAT_UNDER_VALGRIND") and 4 or 1)

local ROOT = os.getenv("WSBEAT_ROOT") or "."
H.ROOT = ROOT
H.PYTHON = "/usr/bin/python3"

local function sh(cmd)
	local p = assert(io.popen(cmd, "r"))
	local out = p:read("a")
	p:close()
	return out
end
H.sh = sh

local tmp
function H.tmpdir()
	if not tmp then
		tmp = sh("mktemp -d /tmp/wsbeat-spec.XXXXXX"):gsub("%s+$", "")
	end
	return tmp
end

local certs
function H.certs()
	if not certs then
		local dir = H.tmpdir() .. "/certs"
		local ok = os.execute(string.format("mkdir -p %s && sh %s/spec/fixtures/gencerts.sh %s",
			dir, ROOT, dir))
		assert(ok, "gencerts.sh failed")
		certs = dir
	end
	return certs
end

function H.sleep(s)
	os.execute(string.format("sleep %.3f", s))
end

local function read_file(path)
	local f = io.open(path, "r")
	if not f then return nil end
	local s = f:read("a")
	f:close()
	return s
end

local Server = {}
Server.__index = Server

local nserver = 0

--- Start a peer. opts: kind = "python" | "node"; tls = true; host; deflate;
-- client_ca = path (mutual TLS); port (reuse a port).
function H.server(opts)
	opts = opts or {}
	if opts.raw then
		-- spec/fixtures/rawhttp.py: a server that answers the upgrade badly
		nserver = nserver + 1
		local log = string.format("%s/raw-%d.log", H.tmpdir(), nserver)
		local pid = sh(string.format("sh -c 'exec %s %s/spec/fixtures/rawhttp.py --mode %s >%s 2>&1' </dev/null & echo $!",
			H.PYTHON, ROOT, opts.raw, log)):gsub("%s+$", "")
		local s = setmetatable({ pid = pid, log = log, opts = opts, kind = "raw" }, Server)
		H.run_until(function()
			local port = (read_file(log) or ""):match("^PORT (%d+)")
			s.port = tonumber(port)
			return port
		end, 10, "raw server")
		s.base = ("ws://127.0.0.1:%d"):format(s.port)
		return s
	end
	nserver = nserver + 1
	local log = string.format("%s/server-%d.log", H.tmpdir(), nserver)
	local args = { "--host", opts.host or "127.0.0.1", "--port", tostring(opts.port or 0) }
	if opts.tls then
		local c = H.certs()
		args[#args + 1] = string.format("--tls %s/%s.pem %s/%s.key", c, opts.cert or "server", c, opts.cert or "server")
	end
	if opts.client_ca then args[#args + 1] = "--client-ca " .. opts.client_ca end
	if opts.deflate then args[#args + 1] = "--deflate" end
	local prog
	if opts.kind == "quiet" then
		-- the benchmark's echo server: node ws, no logging, fastest here
		prog = "node " .. ROOT .. "/bench/echo-server.js"
		args = { "--port", tostring(opts.port or 0) }
	elseif (opts.kind or "python") == "node" then
		prog = "node " .. ROOT .. "/spec/fixtures/node-server.js"
	else
		prog = H.PYTHON .. " " .. ROOT .. "/spec/fixtures/server.py"
	end
	if opts.netns then prog = "ip netns exec " .. opts.netns .. " " .. prog end
	local pid = sh(string.format("sh -c 'exec %s %s >%s 2>%s.err' </dev/null & echo $!",
		prog, table.concat(args, " "), log, log)):gsub("%s+$", "")
	local s = setmetatable({ pid = pid, log = log, opts = opts, kind = opts.kind or "python" }, Server)
	local deadline = core.now() + 10
	while true do
		local text = read_file(log) or ""
		local port = text:match("^PORT (%d+)")
		if port then
			s.port = tonumber(port)
			break
		end
		if core.now() > deadline then
			s:stop()
			error("server did not start: " .. (read_file(log .. ".err") or ""))
		end
		H.sleep(0.02)
	end
	local host = opts.host or "127.0.0.1"
	if host:find(":") then host = "[" .. host .. "]" end
	s.base = string.format("%s://%s:%d", opts.tls and "wss" or "ws", host, s.port)
	return s
end

H.read_file = read_file

function Server:url(path)
	return self.base .. (path or "/echo")
end

--- Every JSON event the server has logged so far.
function Server:events(kind)
	local list = {}
	for line in (read_file(self.log) or ""):gmatch("[^\n]+") do
		if line:sub(1, 1) == "{" then
			local ev = json.decode(line)
			if ev and (not kind or ev.event == kind) then list[#list + 1] = ev end
		end
	end
	return list
end

--- Drive the client loop until the server logged an event matching pred.
function Server:wait_event(kind, pred, timeout)
	local found
	H.run_until(function()
		for _, ev in ipairs(self:events(kind)) do
			if not pred or pred(ev) then
				found = ev
				return true
			end
		end
	end, timeout or 5, "server event " .. kind)
	return found
end

function Server:signal(sig)
	os.execute(string.format("kill -%s %s 2>/dev/null", sig, self.pid))
end

-- gone, or a zombie its (adoptive) parent has not reaped yet
local function exited(pid)
	local stat = read_file("/proc/" .. pid .. "/stat")
	return not stat or stat:match("^%d+ %b() (%a)") == "Z"
end
H.exited = exited

function Server:stop()
	if self.stopped then return end
	self.stopped = true
	self:signal("TERM")
	local deadline = core.now() + 2
	while not exited(self.pid) do
		if core.now() > deadline then
			self:signal("KILL")
			return
		end
		H.sleep(0.01)
	end
end

--- Drive wsbeat until pred() is true; fail with a traceback at the deadline
-- (timeout seconds, scaled by H.SLOW).
function H.run_until(pred, timeout, what)
	local deadline = core.now() + (timeout or 5) * H.SLOW
	while true do
		local v = pred()
		if v then return v end
		local left = deadline - core.now()
		if left <= 0 then
			error(debug.traceback("timed out waiting for " .. (what or "condition"), 2), 2)
		end
		local t = wsbeat.timeout()
		if not t or t > 0.01 then t = 0.01 end
		if t > left then t = left end
		core.wait(t)
		wsbeat.step()
	end
end

--- Connect with a recorder: returns ws and a log of states and messages.
function H.client(url, opts)
	opts = opts or {}
	local rec = { states = {}, infos = {}, messages = {} }
	local user_state, user_msg = opts.on_state, opts.on_message
	opts.on_state = function(ws, st, info)
		rec.states[#rec.states + 1] = st
		rec.infos[#rec.infos + 1] = info
		if user_state then user_state(ws, st, info) end
	end
	if opts.on_message ~= false then
		opts.on_message = function(ws, data, kind)
			rec.messages[#rec.messages + 1] = { data = data, kind = kind }
			if user_msg then user_msg(ws, data, kind) end
		end
	else
		opts.on_message = nil
	end
	local ws = wsbeat.connect(url, opts)
	rec.ws = ws
	return ws, rec
end

function H.wait_state(ws, state, timeout)
	H.run_until(function() return ws:state() == state end, timeout or 5,
		"state " .. state .. " (now " .. ws:state() .. ")")
end

--- Bytes of message k, size n, as the fixtures make them.
function H.pattern(k, n)
	local t = {}
	for i = 0, n - 1 do t[#t + 1] = string.char((k + i) % 256) end
	return table.concat(t)
end

--- Same, fast for big sizes (the pattern repeats every 256 bytes).
function H.big_pattern(k, n)
	local block = H.pattern(k, 256)
	return (block:rep(n // 256 + 1)):sub(1, n)
end

--- A port on 127.0.0.1 that refuses connections for as long as the returned
-- socket lives: bound, so that no other process can take it meanwhile (a
-- server of a test running next to this one, binding port 0), but not
-- listening.  (A port found free and closed again could be taken before
-- the client connected.)  Returns port, socket (close it when done).
function H.refusing_port()
	local s = assert(require("socket").tcp())
	assert(s:bind("127.0.0.1", 0))
	local _, port = s:getsockname()
	return assert(tonumber(port)), s
end

local nnetns = 0

--- A private network namespace with loopback up; deleted by :delete().
-- (Named by process id and a counter: runs side by side never collide.)
function H.netns()
	nnetns = nnetns + 1
	local pid = H.sh("echo $PPID"):gsub("%s+$", "") -- (the shell's parent: this process)
	local name = ("wsbeat%s-%d"):format(pid, nnetns)
	assert(os.execute("ip netns add " .. name), "ip netns add failed (root and iproute2 needed)")
	local ns = { name = name }
	function ns.exec(_, cmd) return H.sh(("ip netns exec %s %s"):format(name, cmd)) end
	function ns.delete() os.execute("ip netns del " .. name .. " 2>/dev/null") end
	assert(os.execute(("ip netns exec %s ip link set lo up"):format(name)))
	return ns
end

--- Resident memory of this process, in KiB.
function H.rss_kb()
	for line in io.lines("/proc/self/status") do
		local v = line:match("^VmRSS:%s+(%d+)")
		if v then return tonumber(v) end
	end
end

function H.open_fds()
	local n = 0
	for _ in sh("ls /proc/$PPID/fd 2>/dev/null"):gmatch("[^\n]+") do n = n + 1 end
	return n
end

--- Start the fault-injection TCP proxy (spec/fixtures/proxy.py) in front of
-- 127.0.0.1:target_port. Returns an object with :url(path), :mode(cmd)
-- ("forward", "blackhole", "freeze", "delay <ms>", "reset", "refuse"; returns
-- once the proxy answered ok), :events(kind), :wait_event(...), :stop().
function H.proxy(target_port)
	nserver = nserver + 1
	local log = string.format("%s/proxy-%d.log", H.tmpdir(), nserver)
	local pid = sh(string.format(
		"sh -c 'exec %s %s/spec/fixtures/proxy.py --target 127.0.0.1:%d >%s 2>%s.err' </dev/null & echo $!",
		H.PYTHON, ROOT, target_port, log, log)):gsub("%s+$", "")
	local p = { pid = pid, log = log, events = Server.events, wait_event = Server.wait_event,
		signal = Server.signal }
	p.stop = Server.stop
	local deadline = core.now() + 10
	while true do
		local text = read_file(log) or ""
		local port, control = text:match("^PORT (%d+)\nCONTROL (%d+)\n")
		if port then
			p.port, p.control = tonumber(port), tonumber(control)
			break
		end
		if core.now() > deadline then
			p:stop()
			error("proxy did not start: " .. (read_file(log .. ".err") or ""))
		end
		H.sleep(0.02)
	end
	function p:url(path)
		return string.format("ws://127.0.0.1:%d%s", self.port, path or "/echo")
	end
	-- bash's /dev/tcp: one short blocking exchange, no interpreter start-up
	function p:mode(cmd)
		assert(not cmd:find("[^%w ]"), "bad proxy command: " .. cmd)
		local out = sh(string.format(
			"timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d && echo \"%s\" >&3 && read -r a <&3 && echo \"$a\"' 2>&1",
			self.control, cmd))
		out = out:gsub("%s+$", "")
		assert(out == "ok", "proxy " .. cmd .. ": " .. out)
	end
	return p
end

return H
