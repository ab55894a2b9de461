--- wsbeat inside an nginx worker (OpenResty, or nginx with its Lua module).
--
-- nginx cannot wait on a foreign fd, so wsbeat.fd() is of no use there.
-- start() runs wsbeat's loop in a timer of the worker (a light thread that
-- lives as long as the worker), so callbacks run in a context where
-- cosockets, ngx.sleep and the rest of ngx.* work:
--
--   init_worker_by_lua_block {
--       local wsbeat = require "wsbeat"
--       wsbeat.connect("wss://feed.example/ws", { on_message = ... })
--       assert(require("wsbeat.openresty").start())
--   }
--
-- The loop waits in one of two ways (opts.wake):
--   "socket" (the default): a thread of wsbeat's waits on the engine's fd
--       and wakes the loop through a unix socket it reads with a cosocket
--       (the core's waker_listen()): no polling, no added latency;
--   "poll": the loop sleeps min(wsbeat.timeout(), opts.interval) with
--       ngx.sleep and steps: no thread, but up to `interval` of added
--       latency on every message and a wake-up every `interval` at idle.
-- docs/LOOPS.md has the measured costs of each.
local wsbeat = require "wsbeat"
local core = require "wsbeat.core"

local M = {}

local ngx = rawget(_G, "ngx")
local math_ceil, math_min, math_max = math.ceil, math.min, math.max

local running = false -- one loop per worker (per Lua state: one engine)
local stats = { wake = nil, turns = 0, wakeups = 0, errors = 0 }

local function log_err(...)
	ngx.log(ngx.ERR, "wsbeat.openresty: ", ...)
end

-- One step; an error of a callback (with no on_error) is logged, and the
-- loop goes on: wsbeat's state is consistent when step() raises.
local function step()
	stats.turns = stats.turns + 1
	local ok, err = pcall(wsbeat.step)
	if not ok then
		stats.errors = stats.errors + 1
		log_err("callback error: ", err)
	end
end

-- How long the loop may sleep, in seconds, bounded by max_wait so that a
-- worker that is shutting down is noticed.
local function sleep_for(max_wait)
	local t = wsbeat.timeout()
	if not t or t > max_wait then t = max_wait end
	if t < 0 then t = 0 end
	return t
end

-- (ngx.sleep(0) would do for "now", but nginx without OpenResty's
-- delayed-events patch warns on every call: work that is due now gets a
-- few more steps first, then the shortest sleep nginx keeps, 1 ms)
local MORE_STEPS = 8

local function poll_loop(opts)
	local interval = opts.interval
	while not ngx.worker.exiting() do
		step()
		local t = sleep_for(opts.max_wait)
		for _ = 1, MORE_STEPS do
			if t > 0 then break end
			step()
			t = sleep_for(opts.max_wait)
		end
		ngx.sleep(math_min(math_max(t, 0.001), interval))
		stats.wakeups = stats.wakeups + 1
	end
end

-- The waker's socket: connect, then one "<ms>\n" / "!" exchange per turn.
local function socket_loop(opts)
	local path, err = core.waker_listen()
	if not path then return nil, err end
	local sock = ngx.socket.tcp()
	-- reads wait at most max_wait (the waker answers by then) plus slack
	sock:settimeouts(1000, 1000, math_ceil(opts.max_wait * 1000) + 1000)
	local ok
	ok, err = sock:connect("unix:" .. path)
	if not ok then return nil, "waker: " .. tostring(err) end
	while not ngx.worker.exiting() do
		step()
		local ms = math_ceil(sleep_for(opts.max_wait) * 1000)
		ok, err = sock:send(ms .. "\n")
		if ok then ok, err = sock:receive(1) end
		if not ok then
			sock:close()
			return nil, "waker: " .. tostring(err)
		end
		stats.wakeups = stats.wakeups + 1
	end
	sock:close()
	return true
end

-- Clients made by M.connect, closed with 1001 when the worker exits.
local managed = setmetatable({}, { __mode = "k" })

local function live()
	local list = {}
	for ws in pairs(managed) do
		if ws:state() ~= "closed" then list[#list + 1] = ws end
	end
	return list
end

-- At worker exit: opts.on_exit, then close every managed client with 1001
-- and serve the closing handshakes for up to opts.exit_timeout seconds.
local function close_all(opts)
	if opts.on_exit then
		local ok, err = pcall(opts.on_exit)
		if not ok then log_err("on_exit: ", err) end
	end
	for _, ws in ipairs(live()) do
		ws:close(1001, "going away")
	end
	local deadline = ngx.now() + opts.exit_timeout
	while live()[1] and ngx.now() < deadline do
		step()
		ngx.sleep(math_max(sleep_for(0.01), 0.001))
		ngx.update_time()
	end
	step()
end

local function loop(premature, opts)
	if premature then return end
	if opts.wake == "socket" then
		local ok, err = socket_loop(opts)
		if not ok and not ngx.worker.exiting() then
			-- the waker is gone (it cannot be made, or its socket failed):
			-- polling still serves, only later
			log_err(err, "; polling every ", opts.interval, " s instead")
			stats.wake = "poll"
			poll_loop(opts)
		end
	else
		poll_loop(opts)
	end
	close_all(opts)
	running = false
end

local function check(opts)
	if opts ~= nil and type(opts) ~= "table" then
		error("wsbeat.openresty.start: bad argument #1 (expected a table or nil)", 3)
	end
	opts = opts or {}
	local o = {
		wake = opts.wake or "socket",
		interval = opts.interval or 0.01,
		max_wait = opts.max_wait or 1,
		exit_timeout = opts.exit_timeout or 1,
		on_exit = opts.on_exit,
	}
	if o.on_exit ~= nil and type(o.on_exit) ~= "function" then
		error("wsbeat.openresty.start: bad option 'on_exit' (expected a function)", 3)
	end
	if o.wake ~= "socket" and o.wake ~= "poll" then
		error("wsbeat.openresty.start: bad option 'wake' (expected \"socket\" or \"poll\")", 3)
	end
	for _, k in ipairs { "interval", "max_wait", "exit_timeout" } do
		local v = o[k]
		if type(v) ~= "number" or v ~= v or v <= 0 or v == math.huge then
			error(("wsbeat.openresty.start: bad option '%s' (expected a number > 0)"):format(k), 3)
		end
	end
	return o
end

--- Start wsbeat's loop in this worker. Call it from init_worker_by_lua*
-- (or any phase that may create timers) after or before connecting.
-- opts: wake = "socket" | "poll" (default "socket"); interval (seconds,
-- poll mode, default 0.01); max_wait (seconds the loop sleeps at most,
-- so that a worker shutting down is noticed, default 1); exit_timeout
-- (seconds for closing handshakes at worker exit, default 1); on_exit (a
-- function called when the worker exits, before M.connect's clients are
-- closed).
-- Returns true, or nil and a message (no ngx, or no timer could be made).
function M.start(opts)
	local o = check(opts)
	if not ngx or not ngx.timer then
		return nil, "not inside nginx's Lua module"
	end
	if running then return nil, "already running in this worker" end
	local ok, err = ngx.timer.at(0, loop, o)
	if not ok then return nil, "ngx.timer.at: " .. tostring(err) end
	running = true
	stats.wake = o.wake
	return true
end

--- wsbeat.connect(url, options), and the client is closed with 1001
-- ("going away") when the worker exits (reload, quit): the peer sees a
-- clean close instead of a dropped connection.
function M.connect(url, options)
	local ws = wsbeat.connect(url, options)
	managed[ws] = true
	return ws
end

--- What the loop has done: wake ("socket" | "poll", what it uses now),
-- turns (steps), wakeups, errors (callback errors logged), running.
function M.stats()
	return {
		wake = stats.wake, turns = stats.turns, wakeups = stats.wakeups,
		errors = stats.errors, running = running,
	}
end

return M
