-- Real proxies as spec fixtures: tinyproxy (HTTP CONNECT, optional Basic
-- auth), microsocks and dante (SOCKS5, optional username/password auth).
-- scripts/install-deps.sh installs them (tinyproxy-bin, microsocks,
-- dante-server) and creates the system account dante's username method
-- checks.
--
--   local P = require "proxies"
--   local px = P.tinyproxy { user = "alice", pass = "s3cret" }
--   px.port, px:url(), px:url { auth = false }, px:url { pass = "wrong" }
--   px:log(), px:connections(), px:wait_connections(1)
--   px:signal("STOP"), px:signal("CONT"), px:stop()
--   P.stop_all()   -- every proxy this module started and did not stop yet
--
-- Each proxy listens on 127.0.0.1 only, runs in a session of its own (so
-- :signal and :stop reach dante's child processes too), keeps its config and
-- log in a directory of its own under H.tmpdir(), and only tunnels to
-- loopback destinations (tinyproxy: a host filter; microsocks: outgoing
-- sockets bound to 127.0.0.1; dante: external 127.0.0.1 and a rule).
local H = require "helper"
local core = require "wsbeat.core"
local socket = require "socket"

local P = {}

-- dante's "username" method checks this system account (install-deps.sh)
P.DANTE_USER = "wsbeat-socks"
P.DANTE_PASS = "wsbeat-socks-pw"

local live = {}
local nproxy = 0
local STARTS = 5 -- attempts when a picked port was taken meanwhile

local function read_file(path) return H.read_file(path) or "" end

local function write_file(path, text)
	local f = assert(io.open(path, "w"))
	f:write(text)
	f:close()
end

local function quote(s)
	return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- percent-encode what may not stand in a URL's userinfo
local function userinfo(s)
	return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

-- Wait for pred() (truthy result returned) until a deadline scaled by H.SLOW.
local function wait_for(pred, timeout, what)
	local deadline = core.now() + (timeout or 5) * H.SLOW
	while true do
		local v = pred()
		if v then return v end
		if core.now() > deadline then
			error("timed out waiting for " .. (what or "condition"), 2)
		end
		H.sleep(0.02)
	end
end
P.wait_for = wait_for

--- A port that was free a moment ago (the kernel's pick for port 0). Another
-- process may take it before the proxy binds it: starters retry on that.
function P.free_port()
	local s = assert(socket.tcp())
	assert(s:bind("127.0.0.1", 0))
	local _, port = s:getsockname()
	s:close()
	return assert(tonumber(port))
end

-- Pids of session `sid` that have not exited (zombies count as exited).
local function session_pids(sid)
	local list = {}
	for pid, stat in H.sh("ps -o pid=,stat= -s " .. sid .. " 2>/dev/null"):gmatch("(%d+)%s+(%S+)") do
		if stat:sub(1, 1) ~= "Z" then list[#list + 1] = tonumber(pid) end
	end
	return list
end

local function session_alive(sid)
	return #session_pids(sid) > 0
end

-- Ports 127.0.0.1 listens on with a socket of process pid: { [port] = true }.
local function listening_ports(pid)
	local ports = {}
	for line in H.sh("ss -Hltnp 2>/dev/null"):gmatch("[^\n]+") do
		local port = line:match("^%S+%s+%d+%s+%d+%s+127%.0%.0%.1:(%d+)%s")
		if port and line:find("pid=" .. pid .. ",", 1, true) then
			ports[tonumber(port)] = true
		end
	end
	return ports
end

local Proxy = {}
Proxy.__index = Proxy

-- Start argv (a list) in a new session, stdout+stderr to self.out.
-- setsid does not fork here (the background subshell is no group leader),
-- so the pid is the proxy's and equals its session and group id.
local function spawn(self, argv)
	local words = {}
	for i, a in ipairs(argv) do words[i] = quote(a) end
	local pid = H.sh(("exec setsid %s >%s 2>&1 </dev/null & echo $!"):format(
		table.concat(words, " "), quote(self.out))):gsub("%s+$", "")
	assert(pid:match("^%d+$"), "could not start " .. argv[1])
	self.pid = pid
	self.stopped = false
	live[self] = true
end

--- Pids of the proxy's processes still running (dante forks children).
function Proxy:processes()
	return session_pids(self.pid)
end

function Proxy:alive()
	return session_alive(self.pid)
end

--- Send a signal ("STOP", "CONT", "TERM", ...) to the whole proxy: its
-- session's process group, so dante's children get it too.
function Proxy:signal(sig)
	assert(tostring(sig):match("^%w+$"), "bad signal")
	-- dash's kill: a negative pid names a group; it takes no "--"
	H.execute(("kill -%s -%s 2>/dev/null"):format(sig, self.pid))
end

--- Stop the proxy and every process it forked; returns once all are gone.
function Proxy:stop()
	if self.stopped then return end
	self:signal("TERM")
	self:signal("CONT") -- a stopped process acts on TERM only once continued
	local ok = pcall(wait_for, function() return not session_alive(self.pid) end, 3, "proxy exit")
	if not ok then
		self:signal("KILL")
		wait_for(function() return not session_alive(self.pid) end, 3, "proxy exit after KILL")
	end
	self.stopped = true
	live[self] = nil
end

--- Everything the proxy has logged so far (its log file and its stdout/stderr).
function Proxy:log()
	local text = read_file(self.logfile)
	if self.out ~= self.logfile then text = text .. read_file(self.out) end
	return text
end

--- The proxy's URL: scheme://[user:pass@]127.0.0.1:port.
-- opts: scheme ("http" for tinyproxy; "socks5" by default for the SOCKS
-- proxies, "socks5h" to have the proxy resolve); auth = false leaves the
-- credentials out; user, pass replace this proxy's own.
function Proxy:url(opts)
	opts = opts or {}
	local scheme = opts.scheme or self.scheme
	local user, pass = self.user, self.pass
	if opts.user ~= nil then user = opts.user end
	if opts.pass ~= nil then pass = opts.pass end
	local cred = ""
	if opts.auth ~= false and user then
		cred = userinfo(user) .. ":" .. userinfo(pass or "") .. "@"
	end
	return ("%s://%s127.0.0.1:%d"):format(scheme, cred, self.port)
end

--- "127.0.0.1:port", for tools that take a bare proxy address.
function Proxy:address()
	return "127.0.0.1:" .. self.port
end

--- Tunnels the proxy opened, in log order: { target = "host:port", ... }.
-- tinyproxy adds method ("CONNECT", or "GET" for a plain proxied request),
-- microsocks client (its IP), dante client and user (when authenticated).
-- microsocks logs the host as the client sent it (a name for socks5h), dante
-- the address it connected to.
function Proxy:connections()
	return self.parse(self:log())
end

--- Wait until at least n tunnels were logged; returns the list.
function Proxy:wait_connections(n, timeout)
	local list
	wait_for(function()
		list = self:connections()
		return #list >= n
	end, timeout, ("%d tunnel(s) in the %s log"):format(n, self.kind))
	return list
end

-- Start: pick a port, write the config, spawn, wait until the process
-- listens on it; retry with another port when the bind lost a race.
local function start(kind, opts, setup)
	nproxy = nproxy + 1
	local dir = ("%s/proxy-%d-%s"):format(H.tmpdir(), nproxy, kind)
	assert(H.execute("mkdir -p " .. quote(dir)), "mkdir " .. dir)
	local self = setmetatable({ kind = kind, dir = dir, opts = opts }, Proxy)
	self.out = dir .. "/stdout.log"
	self.logfile = self.out
	local last
	for attempt = 1, STARTS do
		local argv, port = setup(self, attempt)
		spawn(self, argv)
		local ok, err = pcall(wait_for, function()
			if not session_alive(self.pid) then return "exited" end
			if self.ready and not self.ready(self:log()) then return false end
			local ports = listening_ports(self.pid)
			if port then return ports[port] and "ready" end
			local p = next(ports) -- port 0: the kernel's pick
			if p then
				port = p
				return "ready"
			end
		end, 10, kind .. " to listen")
		if ok and err == "ready" then
			self.port = port
			return self
		end
		last = self:log()
		self:stop()
		-- the picked port was taken between free_port() and the proxy's bind:
		-- dante says "Address already in use", tinyproxy only this
		local lost_race = ok and err == "exited" and (last:find("Address already in use", 1, true)
			or last:find("Could not create listening sockets", 1, true))
		if not lost_race then
			error(("%s did not start (%s): %s"):format(kind, ok and err or tostring(err), last))
		end
	end
	error(("%s did not start after %d attempts: %s"):format(kind, STARTS, last))
end

local function parse_tinyproxy(text)
	local list, pending = {}, {}
	for line in text:gmatch("[^\n]+") do
		local method, target = line:match("Request %(file descriptor %d+%): (%u+) (%S+)")
		if method then
			if method ~= "CONNECT" then
				-- "GET http://host:port/path": keep host:port
				target = target:match("^%a+://([^/]+)") or target
			end
			pending[#pending + 1] = { method = method, target = target }
		else
			local host = line:match('Established connection to host "([^"]*)"')
			if host then
				-- the oldest request for this host that is still open
				for i, r in ipairs(pending) do
					local h = r.target:match("^%[(.*)%]:%d+$") or r.target:match("^(.*):%d+$") or r.target
					if h == host then
						list[#list + 1] = table.remove(pending, i)
						break
					end
				end
			end
		end
	end
	return list
end

--- tinyproxy: HTTP proxy (CONNECT and plain requests). opts: user, pass
-- (BasicAuth; both or neither), timeout (idle seconds, default 600),
-- hosts (list of ERE patterns of allowed destination hosts; default loopback
-- only). Needs -d (foreground); port 0 is refused, so a free port is picked.
-- Note: tinyproxy 1.11 answers 407 when no credentials are sent and
-- 401 Unauthorized when wrong ones are.
function P.tinyproxy(opts)
	opts = opts or {}
	assert((opts.user == nil) == (opts.pass == nil), "tinyproxy: user and pass go together")
	assert(not opts.user or not (opts.user .. opts.pass):find("[%s\"]"),
		"tinyproxy: BasicAuth takes no spaces or quotes")
	local self = start("tinyproxy", opts, function(self)
		local port = P.free_port()
		local filter = self.dir .. "/hosts.filter"
		local hosts = opts.hosts or { "^127\\.[0-9]+\\.[0-9]+\\.[0-9]+$", "^localhost$", "^\\[?::1\\]?$" }
		write_file(filter, table.concat(hosts, "\n") .. "\n")
		self.logfile = self.dir .. "/tinyproxy.log"
		os.remove(self.logfile)
		local conf = {
			"Port " .. port,
			"Listen 127.0.0.1",
			"Timeout " .. (opts.timeout or 600),
			('LogFile "%s"'):format(self.logfile),
			"LogLevel Info",
			"MaxClients 100",
			"Allow 127.0.0.1",
			('Filter "%s"'):format(filter),
			"FilterType ere",
			"FilterDefaultDeny Yes",
		}
		if opts.user then conf[#conf + 1] = ("BasicAuth %s %s"):format(opts.user, opts.pass) end
		local path = self.dir .. "/tinyproxy.conf"
		write_file(path, table.concat(conf, "\n") .. "\n")
		self.ready = function(log) return log:find("Accepting connections", 1, true) end
		return { "tinyproxy", "-d", "-c", path }, port
	end)
	self.scheme, self.user, self.pass = "http", opts.user, opts.pass
	self.parse = parse_tinyproxy
	return self
end

local function parse_microsocks(text)
	local list = {}
	for client, target in text:gmatch("client%[%d+%] (%S+): connected to (%S+)") do
		list[#list + 1] = { client = client, target = target }
	end
	return list
end

--- microsocks: SOCKS5. opts: user, pass (-u/-P; both or neither). Listens
-- on port 0; the port is read from the socket table. It logs each tunnel it
-- opened, not auth failures.
function P.microsocks(opts)
	opts = opts or {}
	assert((opts.user == nil) == (opts.pass == nil), "microsocks: user and pass go together")
	local self = start("microsocks", opts, function()
		-- opts.port: the same port again (a proxy that comes back)
		local argv = { "microsocks", "-i", "127.0.0.1", "-p", tostring(opts.port or 0), "-b", "127.0.0.1" }
		if opts.user then
			for _, a in ipairs { "-u", opts.user, "-P", opts.pass } do argv[#argv + 1] = a end
		end
		return argv, opts.port
	end)
	self.scheme, self.user, self.pass = "socks5", opts.user, opts.pass
	self.parse = parse_microsocks
	return self
end

local function parse_dante(text)
	local list = {}
	-- "pass(1): tcp/connect [: [username%USER@]CIP.CPORT PIP.PPORT -> XIP.XPORT TIP.TPORT"
	for line in text:gmatch("[^\n]+") do
		local src, dst = line:match("tcp/connect %[: (%S+) %S+ %-> %S+ (%S+)")
		if src then
			local user, client = src:match("^username%%(.*)@(.*)$")
			client = client or src
			list[#list + 1] = {
				client = client:match("^(.*)%.%d+$") or client,
				user = user,
				target = (dst:gsub("%.(%d+)$", ":%1")),
			}
		end
	end
	return list
end

--- dante (danted): SOCKS5. opts: auth = true for the username method, which
-- checks the system account P.DANTE_USER / P.DANTE_PASS (made by
-- install-deps.sh); otherwise no authentication. Port 0 is refused, so a
-- free port is picked. Runs as root (privileged operations) and nobody.
function P.dante(opts)
	opts = opts or {}
	if opts.auth then
		assert(H.sh("getent passwd " .. P.DANTE_USER) ~= "",
			"dante auth needs the system account " .. P.DANTE_USER .. ": run scripts/install-deps.sh")
	end
	local self = start("dante", opts, function(self)
		local port = P.free_port()
		self.logfile = self.dir .. "/danted.log"
		os.remove(self.logfile)
		local method = opts.auth and "username" or "none"
		local conf = {
			"logoutput: " .. self.logfile,
			("internal: 127.0.0.1 port = %d"):format(port),
			"external: 127.0.0.1",
			"clientmethod: none",
			"socksmethod: " .. method,
			"user.privileged: root",
			"user.unprivileged: nobody",
			"client pass {",
			"\tfrom: 127.0.0.0/8 to: 0.0.0.0/0",
			"\tlog: connect disconnect error",
			"}",
			"socks pass {",
			"\tfrom: 127.0.0.0/8 to: 127.0.0.0/8",
			"\tcommand: connect",
			"\tlog: connect disconnect error",
			"}",
		}
		local path = self.dir .. "/danted.conf"
		write_file(path, table.concat(conf, "\n") .. "\n")
		self.ready = function(log) return log:find("Dante/server%[%d+/%d+%] v[%d.]+ running") end
		return { "danted", "-f", path, "-N", "1", "-p", self.dir .. "/danted.pid" }, port
	end)
	self.scheme = "socks5"
	if opts.auth then self.user, self.pass = P.DANTE_USER, P.DANTE_PASS end
	self.parse = parse_dante
	return self
end

--- Stop every proxy started here and not stopped yet.
function P.stop_all()
	local list = {}
	for px in pairs(live) do list[#list + 1] = px end
	for _, px in ipairs(list) do px:stop() end
end

return P
