-- wsbeat in a game's frame loop: 60 frames per second, one non-blocking
-- wsbeat.step() per frame, incoming messages applied to the game state.
-- Some frames are slow (a level load, a GC pause): the heartbeat must not
-- call a live server dead because the host did not look for a while.
-- usage: lua5.4 examples/gameloop.lua ws://127.0.0.1:PORT/echo [SECONDS]
local wsbeat = require "wsbeat"
local core = require "wsbeat.core" -- only for its monotonic clock
local socket = require "socket"    -- only for socket.sleep

local url, seconds = assert(arg[1], "usage: gameloop.lua URL [SECONDS]"), tonumber(arg[2]) or 3
local game = { x = 0, updates = 0, frames = 0, slow_frames = 0 }
local transitions = {}

local ws = wsbeat.connect(url, {
	heartbeat = { interval = 0.05, timeout = 0.1 }, -- tight, as a game would
	on_state = function(_, state, info) transitions[#transitions + 1] = state .. ":" .. info.cause end,
	on_message = function(_, data)
		local dx = tonumber(data:match("^move (%-?%d+)$"))
		if dx then
			game.x = game.x + dx
			game.updates = game.updates + 1
		end
	end,
})

local function sleep_until(t)
	-- a real game would wait for vsync
	local d = t - core.now()
	if d > 0 then socket.sleep(d) end
end

local frame = 1 / 60
local start = core.now()
local next_frame = start
local sent = 0
while core.now() - start < seconds do
	game.frames = game.frames + 1
	wsbeat.step() -- one non-blocking step per frame
	if ws:state() == "open" and game.frames % 6 == 0 then
		sent = sent + 1
		ws:send("move " .. (sent % 2 == 0 and 1 or 2)) -- the server echoes it back
	end
	if game.frames % 40 == 0 then
		-- a slow frame: 10 times the heartbeat interval without stepping
		game.slow_frames = game.slow_frames + 1
		sleep_until(core.now() + 0.5)
	end
	next_frame = next_frame + frame
	if next_frame < core.now() then next_frame = core.now() end
	sleep_until(next_frame)
end
ws:close()
while ws:state() ~= "closed" do wsbeat.step() sleep_until(core.now() + frame) end
print(("frames=%d slow=%d sent=%d updates=%d x=%d transitions=%s")
	:format(game.frames, game.slow_frames, sent, game.updates, game.x, table.concat(transitions, ",")))
