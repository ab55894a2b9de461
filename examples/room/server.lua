-- A multiplayer room: every player is a dot that its page moves; the server
-- keeps the positions and sends everyone the whole room 20 times a second.
--   lua5.4 examples/room/server.lua [PORT]     (default 8080; 0 = any free port)
-- then open examples/room/index.html in browsers (README.md says how).
--
-- Protocol, JSON text messages:
--   server -> a new player   {"type":"welcome","id":N}
--   player -> server         {"type":"move","x":X,"y":Y}     (0 <= X < 800, 0 <= Y < 600)
--   server -> all, at 20 Hz  {"type":"state","players":{"N":{"x":X,"y":Y},...}}
--   server -> all            {"type":"left","id":N}          (a player is gone)
-- A player whose connection closes, or goes silent (a dead link, a frozen
-- or sleeping machine: the heartbeat finds it within 4 s), is removed.
-- Needs lua-dkjson (apt-get install lua-dkjson).
local wsbeat = require "wsbeat"
local json = require "dkjson"
local core = require "wsbeat.core" -- only for its monotonic clock

local TICK = 1 / 20 -- seconds between two state messages
local WIDTH, HEIGHT = 800, 600

local players = {} -- conn -> { id = N, x = X, y = Y }
local count, last_id = 0, 0

local function say(...)
	print(...)
	io.stdout:flush()
end

local function finite(v)
	return type(v) == "number" and v == v and v > -math.huge and v < math.huge
end

local function clamp(v, lo, hi)
	return math.max(lo, math.min(hi, v))
end

local function playing(conn)
	return players[conn] ~= nil
end

local server
server = assert(wsbeat.listen {
	port = tonumber(arg[1]) or 8080,
	-- short, for the example: a silent player is dropped 2 s after a ping
	-- that found it silent for 2 s
	heartbeat = { interval = 2, timeout = 2 },
	max_message_size = 4096, -- a move is a few dozen bytes
	on_open = function(conn)
		last_id = last_id + 1
		count = count + 1
		local p = { id = last_id, x = math.random(50, WIDTH - 50), y = math.random(50, HEIGHT - 50) }
		players[conn] = p
		conn:send(json.encode { type = "welcome", id = p.id, width = WIDTH, height = HEIGHT })
		local addr, port = conn:remote()
		say(("join %d %s:%d (%d playing)"):format(p.id, addr, port, count))
	end,
	on_message = function(conn, data, kind)
		local p = players[conn]
		if not p or kind ~= "text" then return end
		local msg = json.decode(data)
		if type(msg) == "table" and msg.type == "move" and finite(msg.x) and finite(msg.y) then
			p.x, p.y = clamp(msg.x, 0, WIDTH - 1), clamp(msg.y, 0, HEIGHT - 1)
		end
	end,
	on_state = function(conn, state, info)
		local p = players[conn]
		if state == "closed" and p then
			players[conn] = nil
			count = count - 1
			server:broadcast(json.encode { type = "left", id = p.id }, "text", playing)
			say(("left %d %s (%d playing)"):format(p.id, info.cause, count))
		end
	end,
})

-- the whole room, to everyone (only to the welcomed: a state never comes
-- before the welcome)
local function broadcast_state()
	if count == 0 then return end
	local list = setmetatable({}, { __jsontype = "object" })
	for _, p in pairs(players) do
		list[tostring(p.id)] = { x = math.floor(p.x + 0.5), y = math.floor(p.y + 0.5) }
	end
	server:broadcast(json.encode { type = "state", players = list }, "text", playing)
end

say("listening " .. server:port())

-- The loop: a tick every TICK seconds on a fixed schedule, and between two
-- ticks wsbeat.run(seconds), which serves the connections until then. A
-- late tick (a slow machine) is not made up for with a burst.
local next_tick = core.now()
while true do
	local now = core.now()
	if now >= next_tick then
		broadcast_state()
		next_tick = next_tick + TICK
		if next_tick <= now then next_tick = now + TICK end
	end
	wsbeat.run(math.max(next_tick - core.now(), 0.001))
end
