--- wsbeat: a WebSocket client that stays connected.
-- Public facade over the C core (wsbeat.core): option validation, callback
-- dispatch, the coroutine-friendly receive() and the tiny scheduler behind
-- wsbeat.spawn.  See ../../docs/DESIGN.md for the architecture.
local core = require "wsbeat.core"
local PROXY = require "wsbeat.proxy"

local type, pairs, ipairs, error, tostring = type, pairs, ipairs, error, tostring
local xpcall, pcall, next, setmetatable, getmetatable = xpcall, pcall, next, setmetatable, getmetatable
local math_huge, math_type = math.huge, math.type
local co_running, co_yield, co_create, co_resume, co_status =
	coroutine.running, coroutine.yield, coroutine.create, coroutine.resume, coroutine.status
local traceback, table_concat = debug.traceback, table.concat
local string_format, string_find = string.format, string.find

local next_event, service, core_wait, now = core.next_event, core.service, core.wait, core.now
local cork, uncork = core.cork, core.uncork
local kicked = core.kicked

local M = { _VERSION = "wsbeat 0.1.0" }
local USER_AGENT = (M._VERSION:gsub(" ", "/")) -- sent unless headers say otherwise

--- Defaults for every option of wsbeat.connect (read-only in spirit: copy
-- before changing).
M.defaults = {
	connect_timeout = 10,
	close_timeout = 3,
	heartbeat = { interval = 20, timeout = 20, mode = "ping" },
	reconnect = { delay = 1, max_delay = 30, factor = 2, jitter = 0.5,
		min_uptime = 5, max_attempts = math_huge },
	max_message_size = 16 * 1024 * 1024,
	max_queue = 256,
	send_buffer = 1024 * 1024,
	compression = false,
}

------------------------------------------------------------------ validation

local function argerror(n, fname, msg, level)
	error(string_format("bad argument #%d to '%s' (%s)", n, fname, msg), level + 1)
end

-- Option errors travel as a table to connect(), which raises them at the
-- caller's line whatever the depth of the check that failed.
local OptionError = {}
local function opterr(key, msg)
	error(setmetatable({ msg = string_format("option '%s': %s", key, msg) }, OptionError), 0)
end

local function expect(key, v, t)
	if type(v) ~= t then
		opterr(key, string_format("expected %s, got %s", t, type(v)))
	end
end

local function positive(key, v, allow_zero)
	expect(key, v, "number")
	if v ~= v or v == math_huge or (allow_zero and v < 0) or (not allow_zero and v <= 0) then
		opterr(key, allow_zero and "expected a finite number >= 0" or "expected a finite number > 0")
	end
	return v
end

local function count(key, v)
	expect(key, v, "number")
	if math_type(v) ~= "integer" and (v ~= v or v % 1 ~= 0 or v == math_huge) then
		opterr(key, "expected a positive integer")
	end
	if v < 1 then opterr(key, "expected a positive integer") end
	return v
end

local function clean_string(key, v)
	expect(key, v, "string")
	if string_find(v, "[%z\r\n]") then
		opterr(key, "must not contain NUL, CR or LF")
	end
	return v
end

local function check_keys(key, t, allowed)
	for k in pairs(t) do
		if not allowed[k] then
			opterr(key, string_format("unknown field '%s'", tostring(k)))
		end
	end
end

local TOKEN = "^[!#$%%&'*+%-.^_`|~%w]+$"
local RESERVED_HEADERS = {
	host = true, upgrade = true, connection = true, ["sec-websocket-key"] = true,
	["sec-websocket-version"] = true, ["sec-websocket-protocol"] = true,
	["sec-websocket-extensions"] = true, origin = true,
}

-- headers table -> flat list {name, value, ...}; raises through `fail`
local function header_list(h, fail)
	if type(h) ~= "table" then
		return fail("expected a table of headers, got " .. type(h))
	end
	local list = {}
	for k, v in pairs(h) do
		if type(k) ~= "string" or not string_find(k, TOKEN) then
			return fail("invalid header name '" .. tostring(k) .. "'")
		end
		if RESERVED_HEADERS[k:lower()] then
			return fail("header '" .. k .. "' is set by wsbeat itself")
		end
		if type(v) == "number" then v = tostring(v) end
		if type(v) ~= "string" or string_find(v, "[%z\r\n]") then
			return fail("invalid value for header '" .. k .. "'")
		end
		list[#list + 1] = k
		list[#list + 1] = v
	end
	return list
end

local function sub_table(key, v, defaults, fields)
	if v == false then return false end
	if v == true or v == nil then v = {} end
	expect(key, v, "table")
	check_keys(key, v, fields)
	local r = {}
	for k, d in pairs(defaults) do r[k] = d end
	for k, x in pairs(v) do r[k] = x end
	return r
end

local OPTION = {}

OPTION.on_message = function(v) expect("on_message", v, "function") return v end
OPTION.on_state = function(v) expect("on_state", v, "function") return v end
OPTION.on_error = function(v) expect("on_error", v, "function") return v end
OPTION.origin = function(v) return clean_string("origin", v) end
OPTION.connect_timeout = function(v) return positive("connect_timeout", v) end
OPTION.close_timeout = function(v) return positive("close_timeout", v) end
OPTION.max_message_size = function(v) return count("max_message_size", v) end
OPTION.max_queue = function(v) return count("max_queue", v) end
OPTION.send_buffer = function(v) return count("send_buffer", v) end
OPTION.compression = function(v) expect("compression", v, "boolean") return v end

OPTION.protocols = function(v)
	if type(v) == "string" then v = { v } end
	expect("protocols", v, "table")
	if #v == 0 then opterr("protocols", "expected a non-empty list of names") end
	local seen = {}
	for i, p in ipairs(v) do
		if type(p) ~= "string" or not string_find(p, TOKEN) then
			opterr("protocols", string_format("entry %d is not a valid subprotocol name", i))
		end
		if seen[p] then opterr("protocols", "duplicate name '" .. p .. "'") end
		seen[p] = true
	end
	return table_concat(v, ", ")
end

OPTION.proxy = function(v)
	if v == false or type(v) == "function" then return v end
	expect("proxy", v, "string")
	local p, err = PROXY.parse(v)
	if not p then opterr("proxy", err) end
	if p.scheme == "https" then
		opterr("proxy", "https:// proxies (TLS to the proxy) are not supported; use http:// "
			.. "(TLS to the server still runs end to end through it) or socks5h://")
	end
	return p
end

OPTION.headers = function(v)
	if type(v) == "function" then return v end
	header_list(v, function(msg) opterr("headers", msg) end)
	return v
end

OPTION.tls = function(v)
	expect("tls", v, "table")
	local fields = { verify = "boolean", ca_file = "string", ca_path = "string",
		cert_file = "string", key_file = "string", server_name = "string" }
	check_keys("tls", v, fields)
	local r = {}
	for k, t in pairs(fields) do
		if v[k] ~= nil then
			if type(v[k]) ~= t then
				opterr("tls", string_format("field '%s': expected %s, got %s", k, t, type(v[k])))
			end
			if t == "string" and (v[k] == "" or string_find(v[k], "%z")) then
				opterr("tls", string_format("field '%s': expected a non-empty string without NUL", k))
			end
			r[k] = v[k]
		end
	end
	if r.key_file and not r.cert_file then
		opterr("tls", "field 'key_file' needs 'cert_file'")
	end
	if r.server_name and not string_find(r.server_name, "^[%w%.%-_:]+$") then
		opterr("tls", "field 'server_name': invalid host name")
	end
	return r
end

OPTION.heartbeat = function(v)
	local hb = sub_table("heartbeat", v, M.defaults.heartbeat,
		{ interval = true, timeout = true, mode = true, message = true })
	if not hb then return false end
	positive("heartbeat.interval", hb.interval)
	positive("heartbeat.timeout", hb.timeout)
	if hb.mode ~= "ping" and hb.mode ~= "message" then
		opterr("heartbeat.mode", "expected 'ping' or 'message'")
	end
	if hb.message ~= nil then expect("heartbeat.message", hb.message, "string") end
	if hb.mode == "message" then
		-- no default text: what a server answers is the server's protocol
		if hb.message == nil then
			opterr("heartbeat.message", "required with mode = 'message' (the text to send as the probe)")
		end
		if utf8.len(hb.message) == nil then
			opterr("heartbeat.message", "must be valid UTF-8")
		end
	end
	return hb
end

OPTION.reconnect = function(v)
	local rc = sub_table("reconnect", v, M.defaults.reconnect,
		{ delay = true, max_delay = true, factor = true, jitter = true,
			min_uptime = true, max_attempts = true, retry = true })
	if not rc then return false end
	positive("reconnect.delay", rc.delay, true)
	positive("reconnect.max_delay", rc.max_delay, true)
	if rc.max_delay < rc.delay then
		-- a longer delay than the default cap raises the cap with it; two
		-- explicit values that contradict each other are a mistake
		if type(v) == "table" and v.max_delay ~= nil then
			opterr("reconnect.max_delay", "must be >= reconnect.delay")
		end
		rc.max_delay = rc.delay
	end
	positive("reconnect.factor", rc.factor)
	if rc.factor < 1 then opterr("reconnect.factor", "expected a number >= 1") end
	positive("reconnect.jitter", rc.jitter, true)
	if rc.jitter > 1 then opterr("reconnect.jitter", "expected a number in [0, 1]") end
	positive("reconnect.min_uptime", rc.min_uptime, true)
	if rc.max_attempts ~= math_huge then count("reconnect.max_attempts", rc.max_attempts) end
	if rc.retry ~= nil then expect("reconnect.retry", rc.retry, "function") end
	return rc
end

local function validate(options)
	local o = {}
	for k, d in pairs(M.defaults) do o[k] = d end
	o.heartbeat, o.reconnect = nil, nil
	if options ~= nil then
		if type(options) ~= "table" then
			error(setmetatable({ msg = "expected a table of options, got " .. type(options) }, OptionError), 0)
		end
		for k, v in pairs(options) do
			local f = OPTION[k]
			if not f then
				error(setmetatable({ msg = string_format("unknown option '%s'", tostring(k)) }, OptionError), 0)
			end
			o[k] = f(v)
		end
	end
	if o.heartbeat == nil then o.heartbeat = OPTION.heartbeat(nil) end
	if o.reconnect == nil then o.reconnect = OPTION.reconnect(nil) end
	o.has_on_message = o.on_message ~= nil
	return o
end

------------------------------------------------------------------ dispatch

local dispatching = false
local spawned = {}      -- coroutine -> true, for every live spawn
local waiting = {}      -- coroutine -> { ws = ws, deadline = t }
local nspawned = 0

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

local function deliver(ws, info, kind, a, b)
	if kind == "message" then
		local ok, err = xpcall(info.on_message, handler, ws, a, b)
		if ok then return nil end
		return report(info, ws, err)
	elseif kind == "state" then
		local err
		if info.on_state then err = call(info, ws, info.on_state, ws, a, b) end
		if a == "open" then ws:_opened() end
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

local function resume(co, ...)
	local ok, err = co_resume(co, ...)
	if co_status(co) == "dead" then
		spawned[co] = nil
		waiting[co] = nil
		nspawned = nspawned - 1
		if not ok then
			-- (an error object whose __tostring fails must not raise here:
			-- the scheduler is half way through a turn)
			local okm, msg = pcall(tostring, err)
			if not okm or type(msg) ~= "string" then msg = "(error object is not a string)" end
			return traceback(co, msg)
		end
	elseif not ok then
		return tostring(err) -- not resumable (e.g. running): not a yield
	elseif not waiting[co] then
		-- it yielded, but not from receive(): nothing would ever resume
		-- it, and run() would wait for it forever
		spawned[co] = nil
		nspawned = nspawned - 1
		return traceback(co, "wsbeat.spawn: the coroutine yielded outside receive() " ..
			"(only receive() may yield to wsbeat's scheduler); it is dropped")
	end
	return nil
end

-- Wake spawned coroutines whose receive() can complete.  The ready ones are
-- collected first and resumed afterwards: a resumed coroutine may spawn
-- others that wait, and adding keys to `waiting` while pairs() walks it
-- breaks the walk ("invalid key to 'next'").
local function schedule()
	if next(waiting) == nil then return nil end
	local t = now()
	local ready, n = nil, 0
	for co, w in pairs(waiting) do
		local data, kind = w.ws:_pop()
		local r1, r2
		if data then
			r1, r2 = data, kind
		elseif w.ws:state() == "closed" then
			r1, r2 = nil, "closed"
		elseif w.deadline and t >= w.deadline then
			r1, r2 = nil, "timeout"
		end
		if r2 then
			ready = ready or {}
			ready[n + 1], ready[n + 2], ready[n + 3] = co, r1, r2
			n = n + 3
		end
	end
	-- every ready one is resumed (each holds its message already); errors
	-- are raised together afterwards.  What they send leaves in one write
	-- per client when they have all run, as from callbacks.
	local errs
	if n > 0 then cork() end
	for i = 1, n, 3 do
		local co = ready[i]
		waiting[co] = nil
		local err = resume(co, ready[i + 1], ready[i + 2])
		if err then
			errs = errs or {}
			errs[#errs + 1] = err
		end
	end
	if n > 0 then uncork() end
	return errs and table_concat(errs, "\n")
end

local log_fn -- the Lua function wsbeat.log() routes lines to, if any
local next_log = core.next_log

-- Deliver the queued events, log lines and coroutine wake-ups; returns the
-- first error to raise (an error stops the drain: the rest stays queued).
local function deliver_all()
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

-- Seconds until the earliest receive() deadline of a waiting coroutine.
local function waiting_timeout()
	if next(waiting) == nil then return nil end
	local t, n = nil, now()
	for _, w in pairs(waiting) do
		if w.deadline then
			local d = w.deadline - n
			if d < 0 then d = 0 end
			if not t or d < t then t = d end
		end
	end
	return t
end

--- Seconds until step() must be called at the latest, 0 = now, nil = idle.
function M.timeout()
	local t, w = core.timeout(), waiting_timeout()
	if w and (not t or w < t) then t = w end
	return t
end

local function busy()
	return nspawned > 0 or core.busy()
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
	local co = co_create(fn)
	spawned[co] = true
	nspawned = nspawned + 1
	local err = resume(co, ...)
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
	if not main and spawned[co] then
		waiting[co] = { ws = ws, deadline = deadline }
		return co_yield()
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
	local ok, o = pcall(validate, options)
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
