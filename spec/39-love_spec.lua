-- The LÖVE example (examples/love) run by LÖVE 11 itself, headless (no
-- window, no graphics: WSBEAT_LOVE_HEADLESS=1, SDL's dummy drivers), in its
-- test mode (WSBEAT_LOVE_TEST=1): a fixed script that prints one "EVENT"
-- line per event, quits through love.event.quit and closes from love.quit.
-- The core is the LuaJIT build (build-jit/), which LÖVE's LuaJIT loads.
local H = require "helper"
local q = H.quote

-- the example's fixed messages (TEST_MESSAGES in examples/love/main.lua)
local MESSAGES = { "hello from LÖVE", "frame 1", '{"x":3,"y":-1}', "ping?", "last one" }

-- A shell command that runs the example against url; env: more variables.
-- LÖVE's own limit is the example's WSBEAT_LOVE_DEADLINE (30 s); timeout
-- is the last resort.
local function love_command(url, env)
	local words = {}
	for k, v in pairs(env or {}) do words[#words + 1] = q(k .. "=" .. v) end
	return ("cd %s && env WSBEAT_LOVE_TEST=1 WSBEAT_LOVE_HEADLESS=1 SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy " ..
		"WSBEAT_LOVE_DEADLINE=%d %s timeout %d love examples/love %s 2>&1; echo rc=$?"):format(
		q(H.ROOT), math.ceil(30 * H.SLOW), table.concat(words, " "), math.ceil(60 * H.SLOW), q(url))
end

-- The example's output as tables: states, causes, sent, recv (in order),
-- verify, closed (its last "closed" line), love (LÖVE's version), rc.
local function parse(out)
	local r = { states = {}, causes = {}, sent = {}, recv = {} }
	for line in out:gmatch("[^\n]+") do
		local kind, rest = line:match("^EVENT (%S+) ?(.*)$")
		if kind == "state" then
			local st, cause = rest:match("^(%S+) (%S+)")
			r.states[#r.states + 1], r.causes[#r.causes + 1] = st, cause
		elseif kind == "sent" or kind == "recv" then
			local k, data = rest:match("^(%d+) (.*)$")
			local list = r[kind]
			assert(tonumber(k) == #list + 1, "out of order: " .. line .. "\n" .. out)
			list[#list + 1] = data
		elseif kind then
			r[kind] = rest
		end
		r.rc = line:match("^rc=(%d+)$") or r.rc
	end
	return r
end

local function server_messages(srv)
	local got = {}
	for _, e in ipairs(srv:events("message")) do got[#got + 1] = e.data end
	return got
end

describe("the LÖVE example #love #slow", function()
	setup(function()
		assert(H.execute("command -v love >/dev/null"), "love is not installed (sh scripts/install-deps.sh)")
		-- the LuaJIT core, as spec 38 builds it (nothing to do when it is up to date)
		local out = H.sh(("cd %s && make -s all LUA_VERSION=jit 2>&1; echo rc=$?"):format(q(H.ROOT)))
		assert.matches("rc=0\n$", out)
	end)

	it("runs headless under LÖVE: open, 5 echoes in order, love.quit closes with 1000", function()
		local srv = H.server {}
		finally(function() H.stop(srv) end)
		local out = H.sh(love_command(srv:url("/echo?love")))
		local r = parse(out)
		assert.equal("0", r.rc, out)
		assert.matches("^11%.%d+ wsbeat/%S+ LuaJIT 2%.1", r.love, 1, false) -- really LÖVE 11, on LuaJIT
		assert.same({ "connecting", "open", "closing", "closed" }, r.states, out)
		assert.same({ "-", "connected", "closed_by_user", "closed_by_user" }, r.causes)
		assert.same(MESSAGES, r.sent)
		assert.same(MESSAGES, r.recv)
		assert.equal("ok", r.verify)
		assert.equal("0", r.quit)
		assert.equal("closed reconnects=0", r.closed)
		assert.matches("\nVIEW state: closed\n", out, 1, true) -- what love.draw would show
		-- the server's record: one connection, the messages in order, and
		-- the close code it received
		local close = srv:wait_event("close", nil, 10)
		assert.same({ 1000, "game quit" }, { close.code, close.reason })
		assert.same(MESSAGES, server_messages(srv))
		assert.equal(1, #srv:events("connect"))
	end)

	it("reconnects when the server is killed and restarted on its port, then carries on", function()
		local srv, srv2, p
		finally(function()
			if p then p:close() end -- (the example quits by its own deadline)
			H.stop(srv2, srv)
		end)
		srv = H.server {}
		local port = srv.port
		-- after 2 echoes the example sends nothing until it is open again
		p = assert(io.popen(love_command(srv:url("/echo?love-restart"), { WSBEAT_LOVE_PAUSE_AT = "2" }), "r"))
		local lines = {}
		local function read_until(pattern)
			while true do
				local line = p:read("*l")
				if not line then
					error("the example ended before a line matching " .. pattern .. ":\n" .. table.concat(lines, "\n"), 2)
				end
				lines[#lines + 1] = line
				if line:match(pattern) then return end
			end
		end
		read_until("^EVENT paused$")
		assert.same({ MESSAGES[1], MESSAGES[2] }, server_messages(srv))
		srv:signal("KILL")
		srv:stop() -- returns once it is gone
		read_until("^EVENT state reconnecting ") -- the client noticed
		srv2 = H.server { port = port }
		local rest = p:read("*a")
		p:close()
		p = nil
		local out = table.concat(lines, "\n") .. "\n" .. rest
		local r = parse(out)
		assert.equal("0", r.rc, out)
		-- lost, then refused attempts (as many as the restart took), then open again
		local seq = table.concat(r.states, ",")
		local middle = seq:match("^connecting,open,reconnecting,(.-)connecting,open,closing,closed$")
		assert.is_truthy(middle, out)
		assert.equal("", (middle:gsub("connecting,reconnecting,", "")), out)
		assert.equal("connection_lost", r.causes[3], out) -- killed: no close frame
		for i = 4, #r.causes - 3 do
			assert.equal(r.states[i] == "connecting" and "reconnect" or "refused", r.causes[i], out)
		end
		assert.same(MESSAGES, r.sent)
		assert.same(MESSAGES, r.recv)
		assert.equal("ok", r.verify)
		assert.equal("closed reconnects=1", r.closed)
		assert.matches("\nVIEW reconnects: 1 ", out, 1, true)
		-- the new server got the rest, once each, in order, and the close
		local close = srv2:wait_event("close", nil, 10)
		assert.same({ 1000, "game quit" }, { close.code, close.reason })
		assert.same({ MESSAGES[3], MESSAGES[4], MESSAGES[5] }, server_messages(srv2))
		assert.equal(1, #srv2:events("connect"))
	end)
end)
