-- examples/embed: a C host that embeds Lua 5.4 and waits on wsbeat's fd in
-- its own epoll loop, next to a timerfd (its "game tick") and a signalfd.
-- The spec builds the host, runs it against a real echo server and checks
-- what the host printed and what the server saw.
local H = require "helper"
local core = require "wsbeat.core"

local q = H.quote
local ROOT = H.sh("cd " .. q(H.ROOT) .. " && pwd"):gsub("\n$", "")
local EMBED = ROOT .. "/examples/embed"
local N = 10

local function read_file(path)
	local f = io.open(path, "r")
	if not f then return "" end
	local s = f:read("*a")
	f:close()
	return s
end

local built
local function build()
	if built then return end
	assert(H.sh("command -v cc || command -v gcc") ~= "",
		"no C compiler: apt-get install build-essential")
	assert(H.execute("pkg-config --exists lua5.4"),
		"pkg-config knows no lua5.4: apt-get install liblua5.4-dev pkg-config")
	assert(io.open(ROOT .. "/build/wsbeat/core.so"),
		"build/wsbeat/core.so is missing: run make in " .. ROOT)
	local out = H.sh(("make -C %s 2>&1; echo rc=$?"):format(q(EMBED)))
	assert(out:find("rc=0\n$"), "building examples/embed failed:\n" .. out)
	built = true
end

local nrun = 0
--- Run the host (optionally under a wrapper such as valgrind), in the
-- foreground: returns stdout, stderr and the exit status.
local function run_host(wrapper, ...)
	nrun = nrun + 1
	local base = ("%s/embed-%d"):format(H.tmpdir(), nrun)
	local args = {}
	for i, a in ipairs { ... } do args[i] = q(a) end
	-- (wrapper: a command line of its own, such as "valgrind --flags")
	local cmd = ("cd /tmp && timeout -k 2 30 %s %s --root %s %s %s >%s 2>%s; echo $?")
		:format(wrapper or "", q(EMBED .. "/host"), q(ROOT), q(EMBED .. "/app.lua"), table.concat(args, " "),
			q(base .. ".out"), q(base .. ".err"))
	local rc = tonumber(H.sh(cmd))
	return read_file(base .. ".out"), read_file(base .. ".err"), rc
end

--- The summary lines: the app's (on "closed") and the host's (at exit).
local function summary(out)
	local app = {}
	app.echoes, app.n, app.in_order, app.sent, app.ticks, app.state, app.cause =
		out:match("echoes=(%d+)/(%d+) in_order=(%a+) sent=(%d+) ticks=(%d+) state=(%a+) cause=([%w_]+)")
	local host = {}
	host.ticks, host.steps, host.fd_wakeups, host.timeout_wakeups, host.lua_errors, host.exit =
		out:match("host: ticks=(%d+) steps=(%d+) fd_wakeups=(%d+) timeout_wakeups=(%d+) lua_errors=(%d+) exit=(%d+)")
	for _, t in ipairs { app, host } do
		for k, v in pairs(t) do t[k] = tonumber(v) or v end
	end
	return app, host
end

local function expected(i) return ("embed message %03d"):format(i) end

--- The server's newest connection: its id, and the messages it got on it.
local function last_connection(srv)
	local connects = srv:events("connect")
	assert.is_true(#connects >= 1, "the server saw no connection")
	local id = connects[#connects].id
	local data = {}
	for _, ev in ipairs(srv:events("message")) do
		if ev.id == id then data[#data + 1] = ev.data end
	end
	return id, data
end

local function wait_close(srv, id)
	return srv:wait_event("close", function(ev) return ev.id == id end)
end

local function check_run(srv, nconnects, out, err, rc, lua_errors)
	local app, host = summary(out)
	local detail = "\nstdout:\n" .. out .. "\nstderr:\n" .. err
	assert.is_truthy(app.echoes, "no app summary" .. detail)
	assert.is_truthy(host.ticks, "no host summary" .. detail)
	assert.equal(0, rc, "host exit status" .. detail)
	-- every echo, in order, and the client reached "closed" by its own close
	assert.same({ echoes = N, n = N, in_order = "true", sent = N, state = "closed", cause = "closed_by_user" },
		{ echoes = app.echoes, n = app.n, in_order = app.in_order, sent = app.sent, state = app.state, cause = app.cause })
	assert.matches("app: state open", out, 1, true)
	assert.matches("app: state closed (closed by user) code 4000", out, 1, true)
	-- the loop served both: the app sends one message per host tick, so the
	-- host ticked at least N times while the client was live, and wsbeat was
	-- woken through its fd (how often depends on timing: a step due to its
	-- timeout may find an echo already there)
	assert.is_true(app.ticks >= N, "ticks while live: " .. app.ticks .. detail)
	assert.is_true(host.ticks >= app.ticks, detail)
	assert.is_true(host.fd_wakeups >= 1, "fd wakeups: " .. host.fd_wakeups .. detail)
	assert.is_true(host.steps >= host.fd_wakeups, detail)
	assert.equal(lua_errors or 0, host.lua_errors, detail)
	assert.equal(0, host.exit)
	assert.matches("host: teardown wsbeat_fd_closed=yes fds_left=0", out, 1, true)
	-- the server's view: one new connection, messages 1..N in order, and
	-- the close code and reason the app gave
	local id, data = last_connection(srv)
	assert.equal(nconnects + 1, #srv:events("connect"))
	local want = {}
	for i = 1, N do want[i] = expected(i) end
	assert.same(want, data)
	local close = wait_close(srv, id)
	assert.equal(4000, close.code)
	assert.equal("embed done", close.reason)
end

describe("embedding in C (examples/embed)", function()
	-- one server for all (each run is a new connection; events carry its id)
	local srv, nconnects
	setup(function()
		build()
		srv = H.server {}
	end)
	teardown(function() H.stop(srv) end)
	before_each(function() nconnects = #srv:events("connect") end)

	it("runs wsbeat in the host's epoll loop next to its own fds", function()
		local t0 = core.now()
		local out, err, rc = run_host(nil, srv:url(), N)
		local dt = core.now() - t0
		check_run(srv, nconnects, out, err, rc)
		assert.equal("", err)
		-- N ticks of 50 ms; echoes that only got served at wsbeat's timeout
		-- (up to 1 s: the heartbeat deadline, the host's cap) would take ~N s
		assert.is_true(dt < 4, "took " .. dt)
	end)

	it("fires wsbeat's timers on time while its own tick keeps waking the loop", function()
		-- nothing listens there: two reconnect delays (0.1-0.2 s, 0.2-0.4 s)
		-- pass with no I/O at all, only wsbeat.timeout() and 50 ms ticks
		local port, hold = H.refusing_port()
		finally(function() hold:close() end)
		local t0 = core.now()
		local out, err, rc = run_host(nil, ("ws://127.0.0.1:%d/"):format(port), N)
		local dt = core.now() - t0
		local detail = "\nstdout:\n" .. out .. "\nstderr:\n" .. err
		assert.equal(0, rc, detail)
		local app, host = summary(out)
		assert.equal("closed", app.state, detail)
		assert.equal("gave_up", app.cause, detail)
		assert.equal(0, app.echoes, detail)
		local _, reconnects = out:gsub("app: state reconnecting %(connection refused%)", "")
		assert.equal(2, reconnects, detail)
		assert.is_true(host.timeout_wakeups >= 2, detail)
		assert.is_true(host.ticks >= 2, detail)
		assert.is_true(dt < 3, "took " .. dt .. detail)
	end)

	it("tears wsbeat down cleanly at lua_close (valgrind) #slow", function()
		assert(H.sh("command -v valgrind") ~= "", "valgrind is not installed")
		local out, err, rc = run_host(
			"valgrind --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite", srv:url(), N)
		assert.equal(0, rc, "valgrind/host exit status\nstdout:\n" .. out .. "\nstderr:\n" .. err)
		assert.matches("ERROR SUMMARY: 0 errors", err, 1, true)
		check_run(srv, nconnects, out, err, rc)
	end)

	it("reports a Lua error raised in a callback and keeps the loop going", function()
		local out, err, rc = run_host(nil, srv:url(), N, 3)
		check_run(srv, nconnects, out, err, rc, 1)
		assert.matches("host: Lua error in wsbeat.step: ", err, 1, true)
		assert.matches("deliberate failure on echo 3", err, 1, true)
		assert.matches("stack traceback:", err, 1, true)
		assert.matches("app.lua", err, 1, true)
	end)

	it("closes gracefully on SIGTERM through its signalfd", function()
		nrun = nrun + 1
		local base = ("%s/embed-%d"):format(H.tmpdir(), nrun)
		-- 10000 messages at one per 50 ms tick: still running when signalled
		local script = ("cd /tmp && %s --root %s %s %s 10000 >%s 2>%s & echo $! >%s; wait $!; echo $? >%s")
			:format(q(EMBED .. "/host"), q(ROOT), q(EMBED .. "/app.lua"), q(srv:url()), q(base .. ".out"),
				q(base .. ".err"), q(base .. ".pid"), q(base .. ".rc"))
		H.sh(("sh -c %s </dev/null >/dev/null 2>&1 &"):format(q(script)))
		local pid
		finally(function()
			if pid then H.execute("kill -KILL " .. q(pid) .. " 2>/dev/null") end
		end)
		local deadline = core.now() + 5
		while true do
			pid = pid or read_file(base .. ".pid"):match("%d+")
			if pid and #srv:events("connect") > nconnects and #select(2, last_connection(srv)) >= 3 then break end
			assert(core.now() < deadline, "the host did not start sending:\n" .. read_file(base .. ".out")
				.. read_file(base .. ".err"))
			H.sleep(0.02)
		end
		H.execute("kill -TERM " .. q(pid))
		deadline = core.now() + 5
		while read_file(base .. ".rc") == "" do
			if core.now() > deadline then
				error("the host did not exit after SIGTERM:\n" .. read_file(base .. ".out"))
			end
			H.sleep(0.02)
		end
		local out, err = read_file(base .. ".out"), read_file(base .. ".err")
		local detail = "\nstdout:\n" .. out .. "\nstderr:\n" .. err
		assert.equal("0", read_file(base .. ".rc"):match("%d+"), "exit status" .. detail)
		assert.matches("host: SIGTERM\napp: SIGTERM: closing", out, 1, true)
		local app, host = summary(out)
		assert.equal("closed", app.state, detail)
		assert.equal("true", app.in_order, detail)
		assert.equal(0, host.lua_errors, detail)
		local close = wait_close(srv, (last_connection(srv)))
		assert.equal(1000, close.code)
		assert.equal("host shutting down", close.reason)
	end)
end)
