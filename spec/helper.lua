-- Test helper: real WebSocket peers on loopback, certificates made at test
-- time, and a run_until() that drives wsbeat's loop.
local json = require "dkjson"
local wsbeat = require "wsbeat"
local core = require "wsbeat.core"

local H = {}

-- The suite runs on 5.4 and on LuaJIT (make test LUA_VERSION=jit); what
-- the two spell differently is here, local to the specs (never a global
-- polyfill, which could hide a library that relies on one).
H.unpack = table.unpack or _G.unpack
function H.pack(...) return { n = select("#", ...), ... } end
-- a / b rounded down, for integers (// is 5.3+)
function H.idiv(a, b) return math.floor(a / b) end
--- os.execute as 5.2+ has it: true|nil, "exit"|"signal", code (5.1 and
-- LuaJIT answer the raw status as one number).
function H.execute(cmd)
	local a, b, c = os.execute(cmd)
	if type(a) == "number" then
		local code = a > 255 and math.floor(a / 256) or a
		return code == 0 or nil, "exit", code
	end
	return a, b, c
end
--- Strict UTF-8 (utf8.len's rules without "lax": no overlong forms, no
-- surrogates, nothing above U+10FFFF): 5.3+'s utf8.len where there is one,
-- else this, in Lua, as an oracle independent of the core's validator.
function H.utf8_valid(s)
	if utf8 then return utf8.len(s) ~= nil end
	local i, n = 1, #s
	while i <= n do
		local c = s:byte(i)
		local len
		local lo, hi = 0x80, 0xBF
		if c < 0x80 then
			len = 1
		elseif c >= 0xC2 and c <= 0xDF then
			len = 2
		elseif c >= 0xE0 and c <= 0xEF then
			len = 3
			if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
		elseif c >= 0xF0 and c <= 0xF4 then
			len = 4
			if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
		else
			return false
		end
		if i + len - 1 > n then return false end
		for k = 1, len - 1 do
			local b = s:byte(i + k)
			if k == 1 and (b < lo or b > hi) then return false end
			if k > 1 and (b < 0x80 or b > 0xBF) then return false end
		end
		i = i + len
	end
	return true
end
-- <close>: 5.4 syntax, which no other Lua parses
H.HAS_CLOSE = (_G.loadstring or load)("local x <close> = nil") ~= nil

-- Upper bounds and waits scale with this: valgrind runs the engine 10-50x
-- slower (make check-memory sets WSBEAT_UNDER_VALGRIND). Lower bounds,
-- which come from the protocol, never scale.
H.SLOW = tonumber(os.getenv("WSBEAT_SLOW")) or (os.getenv("WSBEAT_UNDER_VALGRIND") and 4 or 1)

local ROOT = os.getenv("WSBEAT_ROOT") or "."
H.ROOT = ROOT
H.PYTHON = "/usr/bin/python3"

local function sh(cmd)
	local p = assert(io.popen(cmd, "r"))
	local out = p:read("*a")
	p:close()
	return out
end
H.sh = sh

--- A word for the shell: s in single quotes (paths with spaces, quotes,
-- globs). Every path or value put into a command for H.sh, H.execute or
-- io.popen goes through this.
local function quote(s)
	return "'" .. tostring(s):gsub("'", [['\'']]) .. "'"
end
H.quote = quote

local tmp
--- This run's scratch directory, under $TMPDIR (default /tmp).
function H.tmpdir()
	if not tmp then
		tmp = sh('mktemp -d "${TMPDIR:-/tmp}/wsbeat-spec.XXXXXX"'):gsub("\n$", "")
		assert(tmp ~= "", "mktemp failed")
	end
	return tmp
end

local certs
function H.certs()
	if not certs then
		local dir = H.tmpdir() .. "/certs"
		local ok = H.execute(string.format("mkdir -p %s && sh %s %s",
			quote(dir), quote(ROOT .. "/spec/fixtures/gencerts.sh"), quote(dir)))
		assert(ok, "gencerts.sh failed")
		certs = dir
	end
	return certs
end

function H.sleep(s)
	H.execute(string.format("sleep %.3f", s))
end

local function read_file(path)
	local f = io.open(path, "r")
	if not f then return nil end
	local s = f:read("*a")
	f:close()
	return s
end

-- gone, or a zombie its (adoptive) parent has not reaped yet
local function exited(pid)
	local stat = read_file("/proc/" .. pid .. "/stat")
	return not stat or stat:match("^%d+ %b() (%a)") == "Z"
end
H.exited = exited

-- A peer process: :stop(), :signal(sig), :events(kind), :wait_event(...),
-- and :url(path) once it has a base URL.
local Server = {}
Server.__index = Server

local npeer = 0

--- Start a peer in the background and wait until its log shows that it is
-- ready (the one helper for every server, proxy or other peer process of
-- the specs). argv: the command, a list of words (each quoted for the
-- shell). opts: name (log file name and messages); ready, a Lua pattern
-- the log must match (default "^PORT (%d+)"); stderr = false sends stderr
-- into the log too (default: a file of its own, log .. ".err"); timeout
-- (seconds, default 10, scaled by H.SLOW). Stdin is /dev/null.
-- Returns the peer (pid, log) and the pattern's captures. A peer that exits
-- or is not ready by the deadline is stopped, and the error shows its output.
function H.start_peer(argv, opts)
	opts = opts or {}
	npeer = npeer + 1
	local name = opts.name or "peer"
	local log = ("%s/%s-%d.log"):format(H.tmpdir(), name, npeer)
	local errlog = opts.stderr == false and log or log .. ".err"
	local words = {}
	for i, a in ipairs(argv) do words[i] = quote(a) end
	-- exec: the background job becomes the peer, so $! is its pid
	local pid = sh(("exec %s >%s 2>%s </dev/null & echo $!"):format(
		table.concat(words, " "), quote(log), opts.stderr == false and "&1" or quote(errlog))):gsub("%s+$", "")
	assert(pid:match("^%d+$"), "could not start " .. name .. ": " .. pid)
	local peer = setmetatable({ pid = pid, log = log, name = name }, Server)
	local pattern = opts.ready or "^PORT (%d+)"
	local deadline = core.now() + (opts.timeout or 10) * H.SLOW
	while true do
		local caps = H.pack((read_file(log) or ""):match(pattern))
		if caps[1] then return peer, H.unpack(caps, 1, caps.n) end
		local gone = exited(pid)
		if gone or core.now() > deadline then
			peer:stop()
			local out = read_file(log) or ""
			if errlog ~= log then out = out .. (read_file(errlog) or "") end
			error(("%s did not start (%s): %s"):format(name, gone and "it exited" or "not ready in time", out), 2)
		end
		H.sleep(0.02)
	end
end

--- argv for H.start_peer: lua5.4 with this checkout's wsbeat (lua/ and
-- build/), then the words given (a script and its arguments, or -e CODE).
function H.lua_argv(...)
	return { "env", "LUA_PATH=" .. ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;",
		"LUA_CPATH=" .. ROOT .. "/build/?.so;;", "lua5.4", ... }
end

--- Start a peer. opts: kind = "python" | "node" | "quiet" (bench/echo-server.js,
-- no event log); raw = MODE (spec/fixtures/rawhttp.py); tls = true; cert
-- (name in H.certs(), default "server"); host; deflate; client_ca = path
-- (mutual TLS); port (reuse a port); netns (run in that namespace).
function H.server(opts)
	opts = opts or {}
	local argv, kind
	if opts.raw then
		-- spec/fixtures/rawhttp.py: a server that answers the upgrade badly
		kind = "raw"
		argv = { H.PYTHON, ROOT .. "/spec/fixtures/rawhttp.py", "--mode", opts.raw }
	elseif opts.kind == "quiet" then
		-- the benchmark's echo server: node ws, no logging, fastest here
		kind = "quiet"
		argv = { "node", ROOT .. "/bench/echo-server.js", "--port", tostring(opts.port or 0) }
	else
		kind = opts.kind or "python"
		if kind == "node" then
			argv = { "node", ROOT .. "/spec/fixtures/node-server.js" }
		else
			argv = { H.PYTHON, ROOT .. "/spec/fixtures/server.py" }
		end
		for _, a in ipairs { "--host", opts.host or "127.0.0.1", "--port", tostring(opts.port or 0) } do
			argv[#argv + 1] = a
		end
		if opts.tls then
			local c, cert = H.certs(), opts.cert or "server"
			for _, a in ipairs { "--tls", c .. "/" .. cert .. ".pem", c .. "/" .. cert .. ".key" } do
				argv[#argv + 1] = a
			end
		end
		if opts.client_ca then
			argv[#argv + 1] = "--client-ca"
			argv[#argv + 1] = opts.client_ca
		end
		if opts.deflate then argv[#argv + 1] = "--deflate" end
	end
	if opts.netns then
		table.move(argv, 1, #argv, 5)
		argv[1], argv[2], argv[3], argv[4] = "ip", "netns", "exec", opts.netns
	end
	local s, port = H.start_peer(argv, { name = kind == "raw" and "raw" or "server" })
	s.opts, s.kind, s.port = opts, kind, tonumber(port)
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
	assert(tostring(sig):match("^%w+$"), "bad signal")
	H.execute(string.format("kill -%s %s 2>/dev/null", sig, quote(self.pid)))
end

--- TERM, and KILL if it has not exited 2 s later; returns once it is gone.
function Server:stop()
	if self.stopped then return end
	self.stopped = true
	self:signal("TERM")
	self:signal("CONT") -- a stopped peer acts on TERM only once continued
	local deadline, killed = core.now() + 2, false
	while not exited(self.pid) do
		if core.now() > deadline then
			assert(not killed, self.name .. " (pid " .. self.pid .. ") survived SIGKILL")
			self:signal("KILL")
			killed, deadline = true, core.now() + 2
		end
		H.sleep(0.01)
	end
end

--- Stop every peer given (servers, proxies, anything with :stop()); nil
-- ones are skipped, so one finally (busted keeps only the last one of a
-- test) or teardown can name peers that may not have started. All are
-- stopped even if one raises; the first error is raised afterwards.
function H.stop(...)
	local first
	for i = 1, select("#", ...) do
		local p = select(i, ...)
		if p then
			local ok, err = pcall(p.stop, p)
			if not ok and not first then first = err end
		end
	end
	if first then error(first, 0) end
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

--- A wsbeat server in this process that records what happens to its
-- connections: rec.states ({ conn, state, cause, code }), rec.opened,
-- rec.messages ({ data, kind }), rec.closed() (the "closed" states),
-- rec.url(path [, scheme]).  opts as for wsbeat.listen (port 0 unless
-- given); on_message nil: echo, false: none, a function: called after the
-- message is recorded; on_state is called after the state is recorded.
function H.listen(opts)
	local rec = { states = {}, opened = {}, messages = {} }
	opts = opts or {}
	local user_state, user_message = opts.on_state, opts.on_message
	opts.port = opts.port or 0
	opts.on_state = function(conn, st, info)
		rec.states[#rec.states + 1] = { conn = conn, state = st, cause = info.cause, code = info.code }
		if st == "open" then rec.opened[#rec.opened + 1] = conn end
		if user_state then user_state(conn, st, info) end
	end
	if user_message == false then
		opts.on_message = nil
	else
		opts.on_message = function(conn, data, kind)
			rec.messages[#rec.messages + 1] = { data = data, kind = kind }
			if user_message then return user_message(conn, data, kind) end
			conn:send(data, kind)
		end
	end
	local s = assert(wsbeat.listen(opts))
	rec.server = s
	function rec.url(path, scheme)
		return ("%s://127.0.0.1:%d%s"):format(scheme or (opts.tls and "wss" or "ws"), s:port(), path or "/")
	end
	function rec.closed()
		local r = {}
		for _, st in ipairs(rec.states) do
			if st.state == "closed" then r[#r + 1] = st end
		end
		return r
	end
	return s, rec
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
	return (block:rep(H.idiv(n, 256) + 1)):sub(1, n)
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
	assert(H.execute("ip netns add " .. quote(name)), "ip netns add failed (root and iproute2 needed)")
	local ns = { name = name }
	-- cmd: a shell command line, run in the namespace by sh -c
	function ns.exec(_, cmd) return H.sh(("ip netns exec %s sh -c %s"):format(quote(name), quote(cmd))) end
	function ns.delete() H.execute("ip netns del " .. quote(name) .. " 2>/dev/null") end
	assert(H.execute(("ip netns exec %s ip link set lo up"):format(quote(name))))
	return ns
end

--- Resident memory of this process, in KiB.
-- (the file is closed before the count: a loop over io.lines left early
-- closes it at once on 5.4 only, elsewhere when it is collected, and
-- H.open_fds() would count it)
function H.rss_kb()
	return tonumber((read_file("/proc/self/status") or ""):match("\nVmRSS:%s+(%d+)"))
end

function H.open_fds()
	local n = 0
	for _ in sh("ls /proc/$PPID/fd 2>/dev/null"):gmatch("[^\n]+") do n = n + 1 end
	return n
end

--- Start the fault-injection TCP proxy (spec/fixtures/proxy.py) in front of
-- 127.0.0.1:target_port. Returns a peer with :url(path), :mode(cmd)
-- ("forward", "blackhole", "freeze", "delay <ms>", "reset", "refuse"; returns
-- once the proxy answered ok), :events(kind), :wait_event(...), :stop().
function H.proxy(target_port)
	local p, port, control = H.start_peer({ H.PYTHON, ROOT .. "/spec/fixtures/proxy.py",
		"--target", ("127.0.0.1:%d"):format(target_port) }, { name = "proxy", ready = "^PORT (%d+)\nCONTROL (%d+)\n" })
	p.port, p.control = tonumber(port), tonumber(control)
	p.base = ("ws://127.0.0.1:%d"):format(p.port)
	-- bash's /dev/tcp: one short blocking exchange, no interpreter start-up
	function p:mode(cmd)
		assert(not cmd:find("[^%w ]"), "bad proxy command: " .. cmd)
		local script = 'exec 3<>"/dev/tcp/127.0.0.1/$1" && echo "$2" >&3 && read -r a <&3 && echo "$a"'
		local out = sh(("timeout 5 bash -c %s bash %d %s 2>&1"):format(quote(script), self.control, quote(cmd)))
		out = out:gsub("%s+$", "")
		assert(out == "ok", "proxy " .. cmd .. ": " .. out)
	end
	return p
end

return H
