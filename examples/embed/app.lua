-- app.lua: the script that host.c embeds.
--
--   host --root DIR app.lua URL [N [FAIL_AT]]
--
-- Connects to URL, sends N text messages (default 10), one per host tick,
-- counts the echoes and checks their order, then closes with 4000
-- "embed done" and tells the host it is done once the client is "closed".
-- FAIL_AT = k makes the k-th echo's callback raise an error (after counting
-- it), to show that the host reports Lua errors and the loop goes on.
--
-- The host drives wsbeat (fd/timeout/step) from C; this script only defines
-- callbacks and returns its hooks: done(), on_tick(n), on_signal(name).
local wsbeat = require "wsbeat"

local url, n, fail_at = ...
assert(url, "usage: app.lua URL [N [FAIL_AT]]")
n = math.tointeger(tonumber(n or 10)) or error("N must be an integer")
fail_at = fail_at and math.tointeger(tonumber(fail_at))

local function expected(i) return ("embed message %03d"):format(i) end

local sent, echoes, in_order = 0, 0, true
local ticks_first, ticks_last -- host ticks seen while the client was live
local finished = false

local function say(fmt, ...)
	print(("app: " .. fmt):format(...))
end

local ws = wsbeat.connect(url, {
	heartbeat = { interval = 1, timeout = 2 },
	reconnect = { delay = 0.2, max_attempts = 3 },
	on_state = function(ws, state, info)
		say("state %s (%s)%s", state, info.reason,
			info.code and (" code " .. info.code) or "")
		if state == "closed" then
			local live = ticks_first and (ticks_last - ticks_first + 1) or 0
			print(("echoes=%d/%d in_order=%s sent=%d ticks=%d state=%s cause=%s")
				:format(echoes, n, tostring(in_order), sent, live, ws:state(), info.cause))
			finished = true
		end
	end,
	on_message = function(ws, data)
		echoes = echoes + 1
		if data ~= expected(echoes) then
			in_order = false
			say("echo %d out of order: %q", echoes, data)
		end
		if echoes == n then ws:close(4000, "embed done") end
		if echoes == fail_at then
			error(("deliberate failure on echo %d"):format(echoes))
		end
	end,
})
say("connecting to %s", ws:url())

local app = {}

--- The host's game tick: one message per tick while open.
function app.on_tick(tick)
	if finished then return end
	ticks_first = ticks_first or tick
	ticks_last = tick
	if ws:state() == "open" and sent < n then
		sent = sent + 1
		assert(ws:send(expected(sent)))
	end
end

--- SIGINT/SIGTERM from the host: close gracefully, then be done.
function app.on_signal(name)
	say("%s: closing", name)
	if ws:state() ~= "closed" then ws:close(1000, "host shutting down") end
end

function app.done()
	return finished
end

return app
