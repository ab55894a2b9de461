-- The multiplayer room example (examples/room: server.lua, index.html) as
-- its users run it: the server is a process of its own, two headless
-- chromium pages play in it at once, and a player whose process freezes is
-- found dead by the server's heartbeat and reported to the others.
local H = require "helper"
local browser = require "browser"
local json = require "dkjson"
local core = require "wsbeat.core"

local INTERVAL, TIMEOUT = 2, 2 -- the example's heartbeat
local TICK = 1 / 20 -- its state messages

-- a python websockets player: START at once, ID <n> once welcomed; then a
-- move every 50 ms (so its last byte is never older than that when it is
-- frozen), reading whatever comes
local FROZEN_PLAYER = [[
import asyncio, json, sys
import websockets
print("START", flush=True)
async def main():
    async with websockets.connect(sys.argv[1], ping_interval=None, compression=None) as ws:
        while True:
            msg = json.loads(await ws.recv())
            if msg.get("type") == "welcome":
                break
        print("ID %d" % msg["id"], flush=True)
        async def read():
            async for _ in ws:
                pass
        reader = asyncio.ensure_future(read())
        x = 0
        while not reader.done():
            x = (x + 5) % 800
            await ws.send(json.dumps({"type": "move", "x": x, "y": 100}))
            await asyncio.sleep(0.05)
asyncio.run(main())
]]

local function escape(s)
	return (s:gsub("[^%w%-._~/]", function(c) return ("%%%02X"):format(c:byte()) end))
end

local function page_url(port)
	local root = H.sh("cd " .. H.quote(H.ROOT) .. " && pwd"):gsub("%s+$", "")
	return ("file://%s?test=1&bot=1&ws=%s"):format(escape(root .. "/examples/room/index.html"),
		escape(("ws://127.0.0.1:%d/"):format(port)))
end

local function contains(list, v)
	for _, x in ipairs(list) do
		if x == v then return true end
	end
	return false
end

describe("examples/room: a multiplayer room server and its page #server #browser #slow", function()
	local room, port
	setup(function()
		assert(browser.available())
		local p
		room, p = H.start_peer({ "env", "LUA_PATH=" .. H.ROOT .. "/lua/?.lua;" .. H.ROOT .. "/lua/?/init.lua;;",
			"LUA_CPATH=" .. H.ROOT .. "/build/?.so;;", "lua5.4", H.ROOT .. "/examples/room/server.lua", "0" },
			{ name = "room", ready = "^listening (%d+)\n" })
		port = assert(tonumber(p))
	end)
	teardown(function() H.stop(room) end)

	-- the server's log: id -> cause, for every "left ID CAUSE" line
	local function left_causes()
		local r = {}
		for id, cause in (H.read_file(room.log) or ""):gmatch("\nleft (%d+) (%S+)") do r[tonumber(id)] = cause end
		return r
	end

	it("two browser pages play at once: each sees the other, states come at 20 Hz, both leave cleanly", function()
		local url = page_url(port)
		local results = browser.run({ url, url }, 20)
		local a, b = results[1], results[2]
		for i, r in ipairs(results) do
			local what = "page " .. i .. ": " .. json.encode(r)
			assert.is_number(r.id, what)
			-- it closed by itself, once done
			assert.same({ code = 1000, reason = "test done", wasClean = true }, r.close, what)
			assert.is_true(r.states >= 20, what)
			-- its bot's moves reached the server and came back in the states
			assert.is_true(r.moved, what)
			-- about 20 Hz: at least 10 in the first 1.5 s, and not faster
			-- than the server's tick (19 intervals of 50 ms, some slack)
			assert.is_true(r.times[10] <= 1500 * H.SLOW, what)
			assert.is_true(r.times[20] >= 19 * TICK * 1000 * 0.85, what)
		end
		assert.are_not.equal(a.id, b.id)
		assert.is_true(contains(a.seen, a.id) and contains(a.seen, b.id), "page 1 saw " .. json.encode(a.seen))
		assert.is_true(contains(b.seen, b.id) and contains(b.seen, a.id), "page 2 saw " .. json.encode(b.seen))
		-- the server removed both, as closed by them
		H.run_until(function()
			local left = left_causes()
			return left[a.id] and left[b.id]
		end, 5, "the server to remove both players")
		assert.equal("closed_by_peer", left_causes()[a.id])
		assert.equal("closed_by_peer", left_causes()[b.id])
	end)

	it("a player frozen with SIGSTOP is removed by the heartbeat and the others are told", function()
		local url = ("ws://127.0.0.1:%d/"):format(port)
		-- the other player: a wsbeat client in this process, which H.run_until serves
		local ws, rec = H.client(url, { reconnect = false })
		local frozen
		finally(function()
			H.stop(frozen)
			ws:close()
		end)
		local function received(pred)
			for _, m in ipairs(rec.messages) do
				local msg = json.decode(m.data)
				if type(msg) == "table" and pred(msg) then return msg end
			end
		end
		local me = H.run_until(function() return received(function(m) return m.type == "welcome" end) end,
			5, "the welcome").id
		-- (the python player says START before it connects: waiting for it
		-- never holds up the client here, whose pongs the server waits for)
		frozen = H.start_peer({ H.PYTHON, "-c", FROZEN_PLAYER, url }, { name = "player", ready = "^START" })
		local id
		H.run_until(function()
			id = tonumber((H.read_file(frozen.log) or ""):match("\nID (%d+)"))
			return id and received(function(m) return m.type == "state" and m.players[tostring(id)] end)
		end, 10, "the python player in a state message")
		assert.are_not.equal(me, id)

		frozen:signal("STOP")
		local t0 = core.now()
		H.run_until(function() return received(function(m) return m.type == "left" and m.id == id end) end,
			INTERVAL + TIMEOUT + 1.5, "the others to be told that player " .. id .. " left")
		local elapsed = core.now() - t0
		-- not before the heartbeat could know: its last move came at most
		-- 50 ms before the freeze
		assert.is_true(elapsed >= INTERVAL + TIMEOUT - 0.3, "told after " .. elapsed .. " s")
		H.run_until(function() return left_causes()[id] end, 2, "the server's log line")
		assert.equal("heartbeat_timeout", left_causes()[id])
		-- and the live player is still in the room, in the states that follow
		local n = #rec.messages
		H.run_until(function() return #rec.messages >= n + 5 end, 2, "more state messages")
		local last = json.decode(rec.messages[#rec.messages].data)
		assert.equal("state", last.type)
		assert.is_truthy(last.players[tostring(me)])
		assert.is_nil(last.players[tostring(id)])
		assert.equal("open", ws:state())
	end)
end)
