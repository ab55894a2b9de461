-- wsbeat in a LÖVE (love2d 11) game: connect in love.load, one non-blocking
-- wsbeat.step() per frame in love.update, the connection's state and the
-- last messages in love.draw, a clean close (1000) in love.quit.
--   love examples/love [URL]            (from the repository root)
-- URL: the first argument, else $WSBEAT_URL, else ws://127.0.0.1:8080/
-- (examples/echo-server.lua listens there: README.md). Space sends a message,
-- one more goes every 2 seconds, Escape quits. README.md has the details,
-- and the test mode (WSBEAT_LOVE_TEST=1) that spec/39-love_spec.lua runs.
-- luacheck: globals love, read globals jit

local TEST = os.getenv("WSBEAT_LOVE_TEST") == "1"
io.stdout:setvbuf("line") -- EVENT lines (below) show as they happen, even in a pipe

---------------------------------------------------------------- finding wsbeat
-- LÖVE's require looks in the game (love.filesystem: the game directory or
-- .love archive, and the save directory) first, then in package.path and
-- package.cpath, which LÖVE 11 leaves to LuaJIT's package library (so
-- LUA_PATH and LUA_CPATH work too). A C module such as wsbeat.core loads
-- from an unpacked game directory (love.filesystem's C require path, "??")
-- but never from inside a .love archive; one outside the game, as here, is
-- found through package.cpath. So: $WSBEAT_ROOT (a wsbeat checkout built
-- with `make all LUA_VERSION=jit`), else the checkout this example sits in
-- (examples/love/../..), else an installed wsbeat (`make install
-- LUA_VERSION=jit`: LuaJIT's default paths).
local function add_wsbeat_paths()
	local root = os.getenv("WSBEAT_ROOT")
	if not root or root == "" then
		local game = love.filesystem.getSource():gsub("/+$", "")
		local f = io.open(game .. "/../../lua/wsbeat/init.lua", "r")
		if f then
			f:close()
			root = game .. "/../.."
		end
	end
	if root and root ~= "" then
		package.path = ("%s/lua/?.lua;%s/lua/?/init.lua;"):format(root, root) .. package.path
		package.cpath = ("%s/build-jit/?.so;"):format(root) .. package.cpath
	end
end
add_wsbeat_paths()
local found, wsbeat = pcall(require, "wsbeat")
if not found then
	error("wsbeat not found: build it with `make all LUA_VERSION=jit` and run `love examples/love` " ..
		"from the checkout, or set WSBEAT_ROOT to the checkout, or install it for LuaJIT " ..
		"(`make install LUA_VERSION=jit`)\n" .. tostring(wsbeat), 0)
end

---------------------------------------------------------------- the game's side
local DEFAULT_URL = "ws://127.0.0.1:8080/"
local KEEP = 12      -- lines of history and of messages shown
local TICK = 2       -- seconds between periodic messages (not in test mode)

-- test mode: a fixed script, one machine-checkable line per event
local TEST_MESSAGES = { "hello from LÖVE", "frame 1", "{\"x\":3,\"y\":-1}", "ping?", "last one" }
local TEST_PAUSE_AT = tonumber(os.getenv("WSBEAT_LOVE_PAUSE_AT")) or #TEST_MESSAGES
local TEST_DEADLINE = tonumber(os.getenv("WSBEAT_LOVE_DEADLINE")) or 30

local ws, url
local history = {}   -- { t, text } state changes, newest last
local messages = {}  -- { t, text } sent (">") and received ("<"), newest last
local started, next_tick, ticks, presses = 0, 0, 0, 0
local test = { sent = 0, echoed = 0, opens = 0, ok = true, quitting = false }

-- control characters as \ddd, so one message is one line
local function printable(s)
	return (s:gsub("[%z\1-\31\127]", function(c) return ("\\%d"):format(c:byte()) end))
end

-- one line per event on stdout: state changes always, the script's steps in test mode
local function event(...)
	print("EVENT " .. table.concat({ ... }, " "))
end

local function remember(list, text)
	list[#list + 1] = { t = love.timer.getTime() - started, text = text }
	if #list > KEEP then table.remove(list, 1) end
end

local function send(text)
	local ok, err = ws:send(text)
	remember(messages, ok and ("> " .. text) or ("> " .. text .. "  (not sent: " .. tostring(err) .. ")"))
	return ok, err
end

local function quit(status)
	if test.quitting then return end
	test.quitting = true
	event("quit", status)
	love.event.quit(status) -- love.quit below closes the connection
end

local function test_send_upto(n)
	while test.sent < n do
		test.sent = test.sent + 1
		local m = TEST_MESSAGES[test.sent]
		local ok, err = send(m)
		event("sent", test.sent, ok and printable(m) or ("failed " .. tostring(err)))
	end
end

-- callbacks: called from inside wsbeat.step(), i.e. from love.update. Keep
-- them short and never block in them (no waiting, no receive()).
local function on_state(_, state, info)
	local text = state .. " (" .. tostring(info.cause) .. ")"
	if info.code then text = text .. " code " .. info.code end
	if state == "reconnecting" then
		text = text .. (" attempt %d in %.2f s"):format(info.attempt, info.delay)
	end
	remember(history, text)
	event("state", state, tostring(info.cause), info.code and tostring(info.code) or "-")
	if TEST and state == "open" then
		test.opens = test.opens + 1
		if test.opens == 1 then
			test_send_upto(TEST_PAUSE_AT)
		elseif test.echoed >= TEST_PAUSE_AT then
			test_send_upto(#TEST_MESSAGES) -- back after the pause: the rest
		end
	end
end

local function on_message(_, data, kind)
	remember(messages, "< " .. (kind == "text" and printable(data) or ("[%d bytes binary]"):format(#data)))
	if not TEST then return end
	test.echoed = test.echoed + 1
	local k = test.echoed
	event("recv", k, printable(data))
	if data ~= TEST_MESSAGES[k] then
		test.ok = false
		event("mismatch", k)
	end
	if k == TEST_PAUSE_AT and k < #TEST_MESSAGES then
		event("paused") -- nothing more is sent until the connection was lost and is open again
	elseif k == #TEST_MESSAGES then
		event("verify", test.ok and "ok" or "failed")
		quit(test.ok and 0 or 1)
	end
end

function love.load(args)
	started = love.timer.getTime()
	url = (args and args[1]) or os.getenv("WSBEAT_URL") or DEFAULT_URL
	event("love", ("%d.%d"):format(love.getVersion()), wsbeat._VERSION:gsub(" ", "/"), tostring(jit and jit.version))
	ws = wsbeat.connect(url, {
		on_state = on_state,
		on_message = on_message,
		-- a game wants a dead server noticed quickly: probe after 2 s of
		-- silence, dead 3 s later; step() once a frame is enough for that
		heartbeat = TEST and { interval = 1, timeout = 2 } or { interval = 2, timeout = 3 },
		reconnect = TEST and { delay = 0.1, max_delay = 0.5 } or { delay = 0.5, max_delay = 5 },
		close_timeout = 1,
	})
	remember(history, "connecting")
	event("state", "connecting", "-", "-")
	next_tick = TICK
end

function love.update(dt) -- luacheck: no unused args
	wsbeat.step() -- once per frame; never blocks; on_state and on_message run in here
	local now = love.timer.getTime() - started
	if TEST then
		if now > TEST_DEADLINE and not test.quitting then
			event("timeout", ("%.1f"):format(now))
			quit(1)
		end
	elseif now >= next_tick then
		next_tick = now + TICK
		if ws:state() == "open" then
			ticks = ticks + 1
			send(("tick %d"):format(ticks))
			ws:ping() -- its pong refreshes ws:stats().rtt, shown by love.draw
		end
	end
end

function love.keypressed(key)
	if key == "escape" then
		love.event.quit()
	elseif key == "space" then
		presses = presses + 1
		-- while not open this is buffered and sent, in order, once open again
		send(("hello from LÖVE #%d"):format(presses))
	end
end

local STATE_COLOR = {
	connecting = { 1, 0.8, 0.2 }, open = { 0.3, 1, 0.3 }, reconnecting = { 1, 0.5, 0.1 },
	closing = { 0.7, 0.7, 0.7 }, closed = { 1, 0.3, 0.3 },
}
local WHITE, GREY = { 1, 1, 1 }, { 0.6, 0.6, 0.6 }

--- What love.draw shows, as { color, text } lines (test mode prints them).
local function view_lines()
	local st = ws:stats()
	local lines = {
		{ WHITE, "wsbeat " .. wsbeat._VERSION:match("[%d.]+$") .. " in LÖVE: " .. url },
		{ STATE_COLOR[ws:state()] or WHITE, "state: " .. ws:state() },
		{ GREY, ("reconnects: %d   sent: %d   received: %d   rtt: %s"):format(st.reconnects, st.messages_sent,
			st.messages_received, st.rtt and ("%.1f ms"):format(st.rtt * 1000) or "-") },
		{ GREY, "space: send a message   escape: quit" },
		{ WHITE, "" },
		{ WHITE, "state changes:" },
	}
	for _, h in ipairs(history) do lines[#lines + 1] = { GREY, ("%8.2f  %s"):format(h.t, h.text) } end
	lines[#lines + 1] = { WHITE, "" }
	lines[#lines + 1] = { WHITE, "messages:" }
	for _, m in ipairs(messages) do lines[#lines + 1] = { GREY, ("%8.2f  %s"):format(m.t, m.text) } end
	return lines
end

function love.draw()
	local g = love.graphics
	local y = 10
	for _, line in ipairs(view_lines()) do
		g.setColor(line[1])
		g.print(line[2], 10, y)
		y = y + 18
	end
end

-- The window was closed, Escape was pressed or love.event.quit() was called:
-- close with 1000 and finish the close handshake before the process ends
-- (a game that just exits leaves the server to find a dead peer).
function love.quit()
	if ws and ws:state() ~= "closed" then
		ws:close(1000, "game quit")
		wsbeat.run(1.5) -- steps until closed, 1.5 s at most (close_timeout is 1)
	end
	if TEST then
		event("closed", ws and ws:state() or "-", "reconnects=" .. (ws and ws:stats().reconnects or 0))
		for _, line in ipairs(ws and view_lines() or {}) do print("VIEW " .. line[2]) end
	end
	return false -- let LÖVE quit
end
