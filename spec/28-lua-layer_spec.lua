-- The Lua layer's pure parts, without a network and (but for the first
-- test) without the C core: option checking (lua/wsbeat/options.lua) and
-- the scheduler behind wsbeat.spawn (lua/wsbeat/scheduler.lua).
local O = require "wsbeat.options"
local P = require "wsbeat.proxy"
local SCHEDULER = require "wsbeat.scheduler"

-- The message of the OptionError validate() raises for opts.
local function opt_error(opts, defaults)
	local ok, e = pcall(O.validate, opts, defaults)
	assert.is_false(ok, "no error")
	assert.equal(O.OptionError, getmetatable(e))
	return e.msg
end

describe("the pure modules", function()
	it("load without the C core", function()
		local root = os.getenv("WSBEAT_ROOT") or "."
		local p = assert(io.popen(("cd '%s' && LUA_PATH='./lua/?.lua;./lua/?/init.lua' LUA_CPATH='/nonexistent/?.so' lua5.4 -e "
			.. "'require \"wsbeat.options\" require \"wsbeat.scheduler\" require \"wsbeat.proxy\" "
			.. "print(package.loaded[\"wsbeat.core\"] == nil)' 2>&1"):format(root)))
		local out = p:read("*a")
		p:close()
		assert.equal("true\n", out)
	end)

	it("wsbeat.defaults is the options module's table", function()
		assert.equal(O.defaults, require("wsbeat").defaults)
	end)
end)

describe("options.validate", function()
	it("fills every field the C core reads when nothing is given", function()
		for _, given in ipairs { { nil }, { {} } } do
			local o = O.validate(given[1])
			assert.equal(10, o.connect_timeout)
			assert.equal(3, o.close_timeout)
			assert.equal(16 * 1024 * 1024, o.max_message_size)
			assert.equal(256, o.max_queue)
			assert.equal(1024 * 1024, o.send_buffer)
			assert.is_false(o.compression)
			assert.same({ verify = true }, o.tls)
			assert.same({ interval = 20, timeout = 20, mode = "ping" }, o.heartbeat)
			assert.same({ delay = 1, max_delay = 30, factor = 2, jitter = 0.5, min_uptime = 5, max_attempts = math.huge },
				o.reconnect)
			assert.is_false(o.has_on_message)
			assert.is_nil(o.protocols)
			assert.is_nil(o.origin)
			assert.is_nil(o.proxy)
			assert.is_nil(o.headers)
		end
	end)

	it("copies the defaults' sub-tables, never hands them out", function()
		local o = O.validate { heartbeat = { interval = 5 }, reconnect = { delay = 40 } }
		assert.are_not.equal(O.defaults.heartbeat, o.heartbeat)
		assert.are_not.equal(O.defaults.reconnect, o.reconnect)
		assert.same({ interval = 5, timeout = 20, mode = "ping" }, o.heartbeat)
		assert.equal(20, O.defaults.heartbeat.interval)
		-- a delay above the default cap raises the cap, in the copy only
		assert.equal(40, o.reconnect.max_delay)
		assert.equal(30, O.defaults.reconnect.max_delay)
	end)

	it("reads the defaults table it is given", function()
		local d = {
			connect_timeout = 1, close_timeout = 2, max_message_size = 3, max_queue = 4, send_buffer = 5,
			compression = true, heartbeat = { interval = 6, timeout = 7, mode = "ping" },
			reconnect = { delay = 8, max_delay = 9, factor = 1, jitter = 0, min_uptime = 0, max_attempts = 2 },
		}
		local o = O.validate({ heartbeat = true }, d)
		assert.equal(1, o.connect_timeout)
		assert.equal(5, o.send_buffer)
		assert.is_true(o.compression)
		assert.same(d.heartbeat, o.heartbeat)
		assert.same(d.reconnect, o.reconnect)
	end)

	it("true means the defaults, false switches heartbeat and reconnect off", function()
		local on = O.validate { heartbeat = true, reconnect = true }
		assert.same(O.defaults.heartbeat, on.heartbeat)
		assert.same(O.defaults.reconnect, on.reconnect)
		local off = O.validate { heartbeat = false, reconnect = false }
		assert.is_false(off.heartbeat)
		assert.is_false(off.reconnect)
	end)

	it("keeps what it was given, in the form the core takes", function()
		local f = function() end
		local o = O.validate {
			on_message = f, protocols = "chat", origin = "https://o.example", compression = true,
			tls = { verify = false, server_name = "h.example" },
			heartbeat = { mode = "message", message = "ping?" },
			reconnect = { max_attempts = 3, retry = f },
		}
		assert.is_true(o.has_on_message)
		assert.equal("chat", o.protocols)
		assert.equal("https://o.example", o.origin)
		assert.same({ verify = false, server_name = "h.example" }, o.tls)
		assert.same({ interval = 20, timeout = 20, mode = "message", message = "ping?" }, o.heartbeat)
		assert.equal(3, o.reconnect.max_attempts)
		assert.equal(f, o.reconnect.retry)
		assert.equal("a, b", O.validate({ protocols = { "a", "b" } }).protocols)
		assert.same({ verify = true, ca_file = "ca.pem" }, O.validate({ tls = { ca_file = "ca.pem" } }).tls)
	end)

	it("parses the proxy option with wsbeat.proxy", function()
		local url = "socks5h://u:p%20w@[::1]:9050"
		assert.same(P.parse(url), O.validate({ proxy = url }).proxy)
		assert.same({ scheme = "http", host = "proxy.corp", port = 3128 }, O.validate({ proxy = "proxy.corp:3128" }).proxy)
		assert.is_false(O.validate({ proxy = false }).proxy)
		local f = function() end
		assert.equal(f, O.validate({ proxy = f }).proxy)
	end)

	it("keeps a headers table or function; header_list flattens", function()
		local h = { ["X-A"] = "1" }
		assert.equal(h, O.validate({ headers = h }).headers)
		local f = function() end
		assert.equal(f, O.validate({ headers = f }).headers)
		assert.same({ "X-Num", "42" }, O.header_list({ ["X-Num"] = 42 }, error))
		local list = O.header_list({ A = "1", B = "2" }, error)
		assert.equal(4, #list)
		local seen = {}
		for i = 1, #list, 2 do seen[list[i]] = list[i + 1] end
		assert.same({ A = "1", B = "2" }, seen)
		-- a failure returns what fail returns
		assert.equal("why: header 'HOST' is set by wsbeat itself",
			O.header_list({ HOST = "x" }, function(msg) return "why: " .. msg end))
		assert.equal("expected a table of headers, got string", O.header_list("x", function(msg) return msg end))
	end)

	describe("errors", function()
		-- the texts of spec/06-api_spec.lua, spec/23-newuser_spec.lua and
		-- spec/27-proxy_spec.lua, without connect()'s "bad argument #2" frame
		local cases = {
			{ 5, "expected a table of options, got number" },
			{ { bogus = 1 }, "unknown option 'bogus'" },
			{ { connect_timeout = "1" }, "option 'connect_timeout': expected number, got string" },
			{ { connect_timeout = 0 }, "option 'connect_timeout': expected a finite number > 0" },
			{ { close_timeout = 0 / 0 }, "option 'close_timeout': expected a finite number > 0" },
			{ { max_queue = 1.5 }, "option 'max_queue': expected a positive integer" },
			{ { send_buffer = math.huge }, "option 'send_buffer': expected a positive integer" },
			{ { on_message = "f" }, "option 'on_message': expected function, got string" },
			{ { protocols = {} }, "option 'protocols': expected a non-empty list of names" },
			{ { protocols = { "a b" } }, "option 'protocols': entry 1 is not a valid subprotocol name" },
			{ { headers = { ["Bad Name"] = "x" } }, "option 'headers': invalid header name 'Bad Name'" },
			{ { headers = { X = "a\r\nb" } }, "option 'headers': invalid value for header 'X'" },
			{ { headers = { Host = "x" } }, "option 'headers': header 'Host' is set by wsbeat itself" },
			{ { tls = { verify = "no" } }, "option 'tls': field 'verify': expected boolean, got string" },
			{ { tls = { cafile = "x" } }, "option 'tls': unknown field 'cafile'" },
			{ { heartbeat = { interval = -1 } }, "option 'heartbeat.interval': expected a finite number > 0" },
			{ { heartbeat = { mode = "pong" } }, "option 'heartbeat.mode': expected 'ping' or 'message'" },
			{ { reconnect = { jitter = 2 } }, "option 'reconnect.jitter': expected a number in [0, 1]" },
			{ { reconnect = { tries = 2 } }, "option 'reconnect': unknown field 'tries'" },
			{ { compression = 1 }, "option 'compression': expected boolean, got number" },
			{ { heartbeat = { mode = "message" } },
				"option 'heartbeat.message': required with mode = 'message' (the text to send as the probe)" },
			{ { reconnect = { delay = 5, max_delay = 2 } }, "option 'reconnect.max_delay': must be >= reconnect.delay" },
			{ { proxy = "ftp://p:1" },
				"option 'proxy': unsupported proxy scheme 'ftp' (expected http, https, socks5 or socks5h)" },
			{ { proxy = "https://p:1" }, "option 'proxy': https:// proxies (TLS to the proxy) are not supported; "
				.. "use http:// (TLS to the server still runs end to end through it) or socks5h://" },
			-- the rest, as the code words them
			{ { proxy = 5 }, "option 'proxy': expected string, got number" },
			{ { headers = "X-A: 1" }, "option 'headers': expected a table of headers, got string" },
			{ { origin = "a\r\nX: y" }, "option 'origin': must not contain NUL, CR or LF" },
			{ { protocols = { "a", "a" } }, "option 'protocols': duplicate name 'a'" },
			{ { tls = "on" }, "option 'tls': expected table, got string" },
			{ { tls = { ca_file = "" } }, "option 'tls': field 'ca_file': expected a non-empty string without NUL" },
			{ { tls = { key_file = "k.pem" } }, "option 'tls': field 'key_file' needs 'cert_file'" },
			{ { tls = { server_name = "bad name" } }, "option 'tls': field 'server_name': invalid host name" },
			{ { heartbeat = "yes" }, "option 'heartbeat': expected table, got string" },
			{ { heartbeat = { message = 5 } }, "option 'heartbeat.message': expected string, got number" },
			{ { heartbeat = { mode = "message", message = "\255" } }, "option 'heartbeat.message': must be valid UTF-8" },
			{ { reconnect = 1 }, "option 'reconnect': expected table, got number" },
			{ { reconnect = { delay = -1 } }, "option 'reconnect.delay': expected a finite number >= 0" },
			{ { reconnect = { factor = 0.5 } }, "option 'reconnect.factor': expected a number >= 1" },
			{ { reconnect = { max_attempts = 0 } }, "option 'reconnect.max_attempts': expected a positive integer" },
			{ { reconnect = { retry = true } }, "option 'reconnect.retry': expected function, got boolean" },
		}
		for i, case in ipairs(cases) do
			it(("case %d: %s"):format(i, case[2]), function()
				assert.equal(case[2], opt_error(case[1]))
			end)
		end

		it("print as their message outside connect()", function()
			local _, e = pcall(O.validate, { bogus = 1 })
			assert.equal("unknown option 'bogus'", tostring(e))
		end)
	end)
end)

describe("scheduler", function()
	local clock, corks, uncorks, S

	-- a client as the scheduler sees it: a queue and a state
	local function fake_ws()
		local ws = { q = {}, st = "open" }
		function ws:_pop()
			local m = table.remove(self.q, 1)
			if m then return m[1], m[2] end
			return nil
		end
		function ws:state() return self.st end
		function ws:push(data, kind) self.q[#self.q + 1] = { data, kind } end
		return ws
	end

	-- what receive() does in a spawned coroutine with nothing queued
	local function receive(ws, timeout)
		local data, kind = ws:_pop()
		if data then return data, kind end
		local co = coroutine.running()
		assert.is_true(S.is_spawned(co))
		return S.wait(co, ws, timeout and clock + timeout)
	end

	before_each(function()
		clock, corks, uncorks = 0, 0, 0
		S = SCHEDULER.new {
			now = function() return clock end,
			cork = function() corks = corks + 1 end,
			uncork = function() uncorks = uncorks + 1 end,
		}
	end)

	it("runs a spawn to its first wait, then wakes it with a message, the close or its deadline", function()
		local ws = fake_ws()
		local got = {}
		local co, err = S.spawn(function(a, b)
			got[#got + 1] = { "args", a, b }
			for _ = 1, 3 do got[#got + 1] = { receive(ws, 5) } end
		end, 1, 2)
		assert.is_nil(err)
		assert.equal("suspended", coroutine.status(co))
		assert.same({ { "args", 1, 2 } }, got)
		assert.is_true(S.busy())
		assert.is_nil(S.schedule()) -- nothing ready
		assert.equal(1, #got)
		ws:push("hello", "text")
		assert.is_nil(S.schedule())
		assert.same({ "hello", "text" }, got[2])
		clock = 5
		assert.is_nil(S.schedule())
		assert.same({ nil, "timeout" }, got[3])
		ws.st = "closed"
		assert.is_nil(S.schedule())
		assert.same({ nil, "closed" }, got[4])
		assert.equal("dead", coroutine.status(co))
		assert.is_false(S.busy())
		assert.is_false(S.is_spawned(co))
	end)

	it("a message queued wins over the close and the deadline", function()
		local ws, got = fake_ws(), nil
		S.spawn(function() got = { receive(ws, 1) } end)
		ws:push("last", "binary")
		ws.st = "closed"
		clock = 2
		S.schedule()
		assert.same({ "last", "binary" }, got)
	end)

	it("corks the resumes of one schedule() once, and only when one is ready", function()
		local a, b = fake_ws(), fake_ws()
		S.spawn(function() receive(a) end)
		S.spawn(function() receive(b) end)
		S.schedule()
		assert.equal(0, corks)
		a:push("x", "text")
		b:push("y", "text")
		S.schedule()
		assert.equal(1, corks)
		assert.equal(1, uncorks)
		assert.is_false(S.busy())
	end)

	it("drops a coroutine that yields outside receive(), saying so", function()
		local co, err = S.spawn(function() coroutine.yield() end)
		assert.matches("wsbeat.spawn: the coroutine yielded outside receive() " ..
			"(only receive() may yield to wsbeat's scheduler); it is dropped", err, 1, true)
		assert.matches("stack traceback", err, 1, true)
		assert.is_false(S.is_spawned(co))
		assert.is_false(S.busy())
	end)

	it("returns the errors of the coroutines it resumes, with their tracebacks, one per line", function()
		local ws = fake_ws()
		local _, err = S.spawn(function() error("at once") end)
		assert.matches("at once", err, 1, true)
		assert.is_false(S.busy())
		S.spawn(function() receive(ws) error("first boom") end)
		S.spawn(function() receive(ws) error(setmetatable({}, { __tostring = function() error("no") end })) end)
		ws.st = "closed"
		err = S.schedule()
		assert.matches("first boom", err, 1, true)
		assert.matches("(error object is not a string)", err, 1, true)
		assert.matches("\n", err, 1, true)
		assert.is_false(S.busy())
	end)

	it("a resumed coroutine may spawn others that wait", function()
		local ws, other = fake_ws(), fake_ws()
		local done = false
		S.spawn(function()
			receive(ws)
			for _ = 1, 20 do S.spawn(function() receive(other) end) end
			done = true
		end)
		ws:push("go", "text")
		assert.is_nil(S.schedule())
		assert.is_true(done)
		assert.is_true(S.busy())
		other.st = "closed"
		assert.is_nil(S.schedule())
		assert.is_false(S.busy())
	end)

	it("waiting_timeout: the nearest deadline, 0 once due, nil without one", function()
		assert.is_nil(S.waiting_timeout())
		local ws = fake_ws()
		S.spawn(function() receive(ws) end)
		assert.is_nil(S.waiting_timeout())
		S.spawn(function() receive(ws, 3) end)
		S.spawn(function() receive(ws, 1.5) end)
		assert.equal(1.5, S.waiting_timeout())
		clock = 1
		assert.equal(0.5, S.waiting_timeout())
		clock = 10
		assert.equal(0, S.waiting_timeout())
	end)

	it("knows only its own spawns", function()
		local plain = coroutine.create(function() end)
		assert.is_false(S.is_spawned(plain))
		local other = SCHEDULER.new { now = function() return 0 end, cork = function() end, uncork = function() end }
		local co = S.spawn(function() receive(fake_ws()) end)
		assert.is_true(S.is_spawned(co))
		assert.is_false(other.is_spawned(co))
		assert.is_false(other.busy())
	end)
end)
