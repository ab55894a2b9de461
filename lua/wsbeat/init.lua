--- wsbeat: a WebSocket client that stays connected.
-- Public facade over the C core (wsbeat.core): callback dispatch, the
-- loop (step/run) and the coroutine-friendly receive().  Option checking
-- lives in wsbeat.options, the scheduler behind wsbeat.spawn in
-- wsbeat.scheduler.  See ../../docs/DESIGN.md for the architecture.
local core = require "wsbeat.core"
local PROXY = require "wsbeat.proxy"
local OPTIONS = require "wsbeat.options"
local SCHEDULER = require "wsbeat.scheduler"

local type, error, tostring = type, error, tostring
local xpcall, pcall, getmetatable = xpcall, pcall, getmetatable
-- Lua 5.1's xpcall passes no arguments (5.2+ and LuaJIT do): there, a
-- closure carries them
if select(2, xpcall(function(x) return x end, print, true)) ~= true then
	local xpcall51, unpack = xpcall, table.unpack or _G.unpack
	xpcall = function(f, h, ...)
		local n, args = select("#", ...), { ... }
		return xpcall51(function() return f(unpack(args, 1, n)) end, h)
	end
end
local co_running = coroutine.running
local traceback = debug.traceback
local string_format = string.format

local next_event, service, core_wait, now = core.next_event, core.service, core.wait, core.now
local uncork = core.uncork
local kicked = core.kicked

local validate, header_list, OptionError = OPTIONS.validate, OPTIONS.header_list, OPTIONS.OptionError

local M = { _VERSION = "wsbeat 0.1.0" }
local USER_AGENT = (M._VERSION:gsub(" ", "/")) -- sent unless headers say otherwise

--- Defaults for every option of wsbeat.connect (read-only in spirit: copy
-- before changing).
M.defaults = OPTIONS.defaults

local function argerror(n, fname, msg, level)
	error(string_format("bad argument #%d to '%s' (%s)", n, fname, msg), level + 1)
end

------------------------------------------------------------------ dispatch

local dispatching = false
-- one per Lua state, as the engine: run() waits for the spawns of all clients
local scheduler = SCHEDULER.new { now = now, cork = core.cork, uncork = uncork }
local schedule, waiting_timeout = scheduler.schedule, scheduler.waiting_timeout
local is_spawned, park = scheduler.is_spawned, scheduler.wait

local function handler(err)
	return traceback(tostring(err), 2)
end

-- An error from user code goes to on_error, or is returned to be raised
-- from step() (as is an error inside on_error itself).
local function report(info, ws, err)
	if not info.on_error then return err end
	local ok, err2 = xpcall(info.on_error, handler, ws, err)
	if not ok then return err2 end
	return nil
end

-- Call a user callback; nil, or the error still to raise.
local function call(info, ws, fn, ...)
	local ok, err = xpcall(fn, handler, ...)
	if ok then return nil end
	return report(info, ws, err)
end

local function resolve_headers(ws, info)
	local h = info.headers
	if type(h) == "function" then
		local ok, res = xpcall(h, handler, ws)
		if not ok then return nil, res end
		h = res
	end
	if h == nil then h = {} end
	local fail_msg
	local list = header_list(h, function(msg) fail_msg = msg end)
	if fail_msg then return nil, "headers function: " .. fail_msg end
	for i = 1, #list, 2 do
		if list[i]:lower() == "user-agent" then return list end
	end
	list[#list + 1] = "User-Agent"
	list[#list + 1] = USER_AGENT
	return list
end

-- The proxy of the next attempt, as core.attempt takes it: nil (direct),
-- a parsed table, or a string saying why none could be chosen.
local function resolve_proxy(ws, info)
	local opt = info.proxy
	if type(opt) == "function" then
		local ok, res = xpcall(opt, handler, ws)
		if not ok then return "proxy function: " .. tostring(res) end
		if res == nil or res == false then
			opt = res
		elseif type(res) ~= "string" then
			return "proxy function: expected a URL, false or nil, got " .. type(res)
		else
			local p, err = PROXY.parse(res)
			if not p then return "proxy function: " .. err end
			opt = p
		end
	end
	local p, err = PROXY.choose(opt, ws:_target())
	if p == false then return "proxy from the environment: " .. err end
	if p and p.scheme == "https" then
		return "https:// proxies (TLS to the proxy) are not supported: " .. PROXY.display(p)
	end
	return p
end

-- Connections closed since the last drain.  Each holds some kilobytes of C
-- memory until its userdata is collected, which the collector does not see:
-- with a big Lua heap (its pace grows with the heap) thousands of closed
-- connections piled up between cycles (RSS grew by 100 MB over 10,000
-- connections).  drain() tells it, as an allocation of that size would.
local closed_n = 0
local CONN_KB = math.floor(core.conn_bytes / 1024) + 1

local function deliver(ws, info, kind, a, b)
	if kind == "message" then
		local ok, err = xpcall(info.on_message, handler, ws, a, b)
		if ok then return nil end
		return report(info, ws, err)
	elseif kind == "state" then
		local err
		if info.on_state then err = call(info, ws, info.on_state, ws, a, b) end
		local q = info._accept_q -- (a server's connection)
		if a == "open" then
			if q then
				if info.on_open then
					err = err or call(info, ws, info.on_open, ws)
				else
					q.last = q.last + 1
					q[q.last] = ws
					q.at[ws] = q.last
				end
			end
			ws:_opened()
		elseif a == "closed" then
			closed_n = closed_n + 1
			if q and q.at[ws] then
				-- never accepted: it leaves the queue (which so holds
				-- open connections only, whether or not accept() is
				-- ever called)
				q[q.at[ws]] = nil
				q.at[ws] = nil
			end
		end
		return err
	elseif kind == "decide" then
		-- reconnect.retry(ws, info) -> boolean; an error keeps the default
		local ok, res = xpcall(info.reconnect.retry, handler, ws, a)
		if ok then
			ws:_decide(res and true or false)
			return nil
		end
		ws:_decide(a.retry)
		return report(info, ws, res)
	elseif kind == "attempt" then
		-- a failing headers function: attempt without extra headers
		local list, err = resolve_headers(ws, info)
		core.attempt(ws, list or { "User-Agent", USER_AGENT }, resolve_proxy(ws, info))
		if err then return report(info, ws, err) end
		return nil
	end
end

local log_fn -- the Lua function wsbeat.log() routes lines to, if any
local next_log = core.next_log

-- Deliver the queued events, log lines and coroutine wake-ups; returns the
-- first error to raise (an error stops the drain: the rest stays queued).
local upgrade_errors = {} -- { info, server, err } from on_upgrade, to report

local function deliver_all()
	while upgrade_errors[1] do
		local e = table.remove(upgrade_errors, 1)
		local err = report(e[1], e[2], e[3])
		if err then return err end
	end
	while true do
		local ws, info, kind, a, b = next_event()
		if not ws then break end
		local err = deliver(ws, info, kind, a, b)
		if err then return err end
	end
	if log_fn then
		while true do
			local level, text = next_log()
			if not level then break end
			local ok, err = xpcall(log_fn, handler, level, text)
			if not ok then return err end
		end
	end
	return schedule()
end

local function drain()
	if dispatching then
		error("wsbeat: step() called from inside a callback", 3)
	end
	dispatching = true
	-- (no pcall around it, on this hot path: every error of user code
	-- comes back as a value; without one, the batch was written when
	-- next_event() ran dry)
	local err = deliver_all()
	dispatching = false
	if closed_n > 0 then
		collectgarbage("step", closed_n * CONN_KB)
		closed_n = 0
	end
	if err then
		uncork()
		error(err, 0)
	end
end

-- One turn: wait (or not), service, deliver; then, if the callbacks sent or
-- closed something, service once more so it leaves now instead of on the
-- host's next turn.
local function turn(wait)
	if wait then core_wait(wait) else service() end
	drain()
	if kicked() then
		service()
		drain()
	end
end

--- Service I/O and timers that are due and call the callbacks. Never blocks.
function M.step()
	if dispatching then error("wsbeat.step: called from inside a callback", 2) end
	turn(false)
end

--- The engine's pollable file descriptor (readable when step() has work).
function M.fd()
	return core.fd()
end

--- Seconds until step() must be called at the latest, 0 = now, nil = idle.
function M.timeout()
	local t, w = core.timeout(), waiting_timeout()
	if w and (not t or w < t) then t = w end
	return t
end

local sched_busy = scheduler.busy
local function busy()
	return sched_busy() or core.busy()
end

--- Run the loop until every client is closed and every spawned coroutine
-- has finished, or until `timeout` seconds have passed.  Returns true when
-- everything finished, false on timeout.
function M.run(timeout)
	if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout < 0) then
		argerror(1, "run", "expected a number >= 0", 2)
	end
	if dispatching then error("wsbeat.run: called from inside a callback", 2) end
	local deadline = timeout and now() + timeout
	while busy() do
		-- the engine's own deadlines are core.wait's business
		local t = waiting_timeout()
		if deadline then
			local left = deadline - now()
			if left <= 0 then return false end
			if not t or left < t then t = left end
		end
		turn(t or -1)
	end
	return true
end

--- Run fn(...) as a coroutine whose receive() calls yield to wsbeat.
function M.spawn(fn, ...)
	if type(fn) ~= "function" then argerror(1, "spawn", "expected a function", 2) end
	local co, err = scheduler.spawn(fn, ...)
	if err then error(err, 0) end
	return co
end

------------------------------------------------------------------ client

local methods = core.methods

local function cqueues_running()
	local cq = package.loaded.cqueues
	if cq and cq.running then
		local ctl = cq.running()
		if ctl then return cq end
	end
	return nil
end

--- Take the next message: data, kind | nil, "timeout" | nil, "closed".
function methods.receive(ws, timeout)
	local info = ws:_info()
	if info.on_message then
		error("receive: this client has an on_message callback (no receive queue)", 2)
	end
	if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout < 0) then
		argerror(1, "receive", "expected a timeout in seconds >= 0", 2)
	end
	local data, kind = ws:_pop()
	if data then return data, kind end
	if ws:state() == "closed" then return nil, "closed" end
	if timeout == 0 then return nil, "timeout" end
	local deadline = timeout and now() + timeout

	local co, main = co_running()
	if not main and is_spawned(co) then
		return park(co, ws, deadline)
	end
	if dispatching then
		-- (under cqueues too: a callback that yielded would leave the
		-- drain, and the sends it batches, half done)
		error("receive: would block inside a callback", 2)
	end
	local cq = not main and cqueues_running()
	while true do
		local left = deadline and deadline - now()
		if left and left <= 0 then return nil, "timeout" end
		local t = M.timeout()
		if left and (not t or left < t) then t = left end
		if cq then
			cq.poll(ws, t)
			M.step()
		else
			turn(t or -1)
		end
		data, kind = ws:_pop()
		if data then return data, kind end
		if ws:state() == "closed" then return nil, "closed" end
	end
end

--- Iterate over data, kind until the client is closed.
function methods.messages(ws)
	return function()
		local data, kind = ws:receive()
		if data then return data, kind end
		return nil
	end
end

-- cqueues pollable protocol: cqueues.poll(ws) waits for the engine.
function methods.pollfd() return core.fd() end
function methods.events() return "r" end
function methods.timeout() return M.timeout() end

-- LuaSocket's select protocol: socket.select({ws, ...}) waits on the engine
-- fd; dirty() says "ready now" when step() has work without the fd.
function methods.getfd() return core.fd() end
function methods.dirty() return M.timeout() == 0 end

--- Create a client and start connecting (non-blocking).
function M.connect(url, options)
	if type(url) ~= "string" then
		argerror(1, "connect", "expected a URL string, got " .. type(url), 2)
	end
	local ok, o = pcall(validate, options, M.defaults)
	if not ok then
		if getmetatable(o) == OptionError then argerror(2, "connect", o.msg, 2) end
		error(o, 0)
	end
	local ws, err = core.new(url, o)
	if not ws then argerror(1, "connect", err, 2) end
	local list, herr = resolve_headers(ws, o)
	if not list then
		ws:close()
		error(herr, 2)
	end
	local proxy = resolve_proxy(ws, o)
	if type(proxy) == "string" and type(o.proxy) ~= "function" then
		-- the environment names a proxy wsbeat cannot use: say so now
		ws:close()
		error("connect: " .. proxy, 2)
	end
	core.attempt(ws, list, proxy)
	return ws
end

------------------------------------------------------------------ server

local server_methods = core.server_methods
local conn_methods = core.conn_methods

conn_methods.receive = methods.receive
conn_methods.messages = methods.messages
conn_methods.pollfd = methods.pollfd
conn_methods.events = methods.events
conn_methods.timeout = methods.timeout
conn_methods.getfd = methods.getfd
conn_methods.dirty = methods.dirty

local utf8_valid = core.utf8_valid -- (utf8.len is 5.3+)
-- an integer: of the integer subtype on 5.3+; on 5.1, 5.2 and LuaJIT,
-- which have none, a number without a fraction
local is_integer = math.type and function(v) return math.type(v) == "integer" end
	or function(v) return type(v) == "number" and v % 1 == 0 end
local KINDS = { text = true, binary = true }

-- on_upgrade(request) as the core calls it: the user's answer checked and
-- reduced to accept, protocol | false, status, reason.  An error (or a
-- wrong answer) refuses the request with 500 and is reported like an error
-- of any callback, after the engine's turn.
local function upgrade_wrapper(info)
	local fn = info.on_upgrade
	return function(request, default)
		local ok, a, b, c = xpcall(fn, handler, request)
		local problem
		if not ok then
			problem = a
		elseif a == true then
			if b == nil then return true, default end
			if type(b) ~= "string" then
				problem = "on_upgrade: the subprotocol must be a string, got " .. type(b)
			else
				for _, p in ipairs(request.protocols) do
					if p == b then return true, b end
				end
				problem = "on_upgrade: chose subprotocol '" .. b .. "', which the client did not offer"
			end
		elseif a == false or a == nil then
			if b == nil then b = 403 end
			if not is_integer(b) or b < 400 or b > 599 then
				problem = "on_upgrade: a refusal's status must be an integer 400-599, got " .. tostring(b)
			elseif c ~= nil and type(c) ~= "string" then
				problem = "on_upgrade: the reason must be a string, got " .. type(c)
			else
				return false, b, c or ""
			end
		else
			problem = "on_upgrade: expected true [, subprotocol] or false, status [, reason], got " .. type(a)
		end
		upgrade_errors[#upgrade_errors + 1] = { info, info._server, problem }
		return false, 500, "internal server error"
	end
end

--- Listen for WebSocket connections (non-blocking; served by step/run).
function M.listen(options)
	local ok, o = pcall(OPTIONS.validate_server, options, M.defaults)
	if not ok then
		if getmetatable(o) == OptionError then argerror(1, "listen", o.msg, 2) end
		error(o, 0)
	end
	o._accept_q = { first = 1, last = 0, at = {} }
	if o.on_upgrade then o._upgrade = upgrade_wrapper(o) end
	local server, err = core.listen(o)
	if not server then return nil, err end
	o._server = server
	return server
end

-- The accept queue as the scheduler waits on it (a receive() look-alike).
local function acceptor(server)
	local q = server:_info()._accept_q
	return {
		_pop = function()
			while q.first <= q.last do
				local i = q.first
				local conn = q[i]
				q[i] = nil
				q.first = i + 1
				if conn then
					q.at[conn] = nil
					if conn:state() == "open" then return conn, "conn" end
				end
			end
			return nil
		end,
		state = function()
			return server:stats().listening and "open" or "closed"
		end,
	}
end

--- The next new connection (servers without on_open): conn | nil, "timeout"
-- | nil, "closed".  Coroutine-friendly like receive().
function server_methods.accept(server, timeout)
	local info = server:_info()
	if info.on_open then
		error("accept: this server has an on_open callback (no accept queue)", 2)
	end
	if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout < 0) then
		argerror(1, "accept", "expected a timeout in seconds >= 0", 2)
	end
	local a = acceptor(server)
	local conn = a._pop()
	if conn then return conn end
	if a.state() == "closed" then return nil, "closed" end
	if timeout == 0 then return nil, "timeout" end
	local deadline = timeout and now() + timeout
	local co, main = co_running()
	if not main and is_spawned(co) then
		local r1, r2 = park(co, a, deadline)
		if r1 then return r1 end
		return nil, r2
	end
	if dispatching then error("accept: would block inside a callback", 2) end
	while true do
		local left = deadline and deadline - now()
		if left and left <= 0 then return nil, "timeout" end
		local t = M.timeout()
		if left and (not t or left < t) then t = left end
		turn(t or -1)
		conn = a._pop()
		if conn then return conn end
		if a.state() == "closed" then return nil, "closed" end
	end
end

--- Iterate over the open connections.
function server_methods.clients(server)
	local list, i = server:_conns(), 0
	return function()
		i = i + 1
		return list[i]
	end
end

--- Queue one message for every open connection (or those filter(conn)
-- picks): the number of connections it was queued for.
function server_methods.broadcast(server, data, kind, filter)
	if type(data) ~= "string" then
		argerror(1, "broadcast", "expected a string, got " .. type(data), 2)
	end
	if kind == nil then kind = "text" end
	if not KINDS[kind] then argerror(2, "broadcast", "expected 'text' or 'binary'", 2) end
	if filter ~= nil and type(filter) ~= "function" then
		argerror(3, "broadcast", "expected a function(conn) -> boolean", 2)
	end
	if kind == "text" and not utf8_valid(data) then return nil, "invalid UTF-8" end
	local list
	if filter then
		list = {}
		for _, conn in ipairs(server:_conns()) do
			if filter(conn) then list[#list + 1] = conn end
		end
	end
	return server:_broadcast(data, kind == "binary", list)
end

--- Stop listening, close every connection (code, default 1001) and wait
-- for them (not from inside a callback: there it only starts the close).
function server_methods.close(server, code, reason)
	if code ~= nil and not is_integer(code) then
		argerror(1, "close", "expected an integer close code", 2)
	end
	if reason ~= nil and type(reason) ~= "string" then
		argerror(2, "close", "expected a string", 2)
	end
	server:_close(code, reason)
	if dispatching then return end
	local info = server:_info()
	local deadline = now() + info.close_timeout + 1
	local co, main = co_running()
	while server:_live() > 0 and now() < deadline do
		if not main and is_spawned(co) then
			break -- (a spawned coroutine can't run the loop; run() will)
		end
		turn(math.min(0.05, deadline - now()))
	end
end

--- Engine-wide counters: clients by state, messages, bytes, reconnects.
function M.stats()
	return core.engine_stats()
end

local LEVELS = { error = true, warn = true, info = true, debug = true }

--- Route wsbeat's and libwebsockets' log lines: target is a function
-- (level, text) called from step(), "stderr", or nil to switch logging off;
-- level is "error", "warn", "info" (default) or "debug".
function M.log(target, level)
	if target ~= nil and target ~= "stderr" and type(target) ~= "function" then
		argerror(1, "log", "expected a function, \"stderr\" or nil", 2)
	end
	if level == nil then level = "info" end
	if not LEVELS[level] then
		argerror(2, "log", "expected 'error', 'warn', 'info' or 'debug'", 2)
	end
	if target == nil then
		log_fn = nil
		core.set_log(nil)
	elseif target == "stderr" then
		log_fn = nil
		core.set_log(level, true)
	else
		log_fn = target
		core.set_log(level, false)
	end
end

return M
