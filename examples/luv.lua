-- wsbeat inside a luv (libuv) program: the engine's fd is watched with a
-- uv_poll handle and a uv timer is re-armed from wsbeat.timeout(), so
-- wsbeat and luv's own loop (here: a 10 ms ticker) share one process.
-- usage: lua5.4 examples/luv.lua ws://127.0.0.1:PORT/echo [N]
local uv = require "luv"
local wsbeat = require "wsbeat"

local url, n = assert(arg[1], "usage: luv.lua URL [N]"), tonumber(arg[2]) or 10
local echoes, ticks, done = 0, 0, false

local poll = uv.new_poll(wsbeat.fd())
local timer = uv.new_timer()
local ticker = uv.new_timer()
local sender = uv.new_timer()

-- one function drives wsbeat: run step(), then re-arm the timer
local function drive()
	wsbeat.step()
	local t = wsbeat.timeout()
	timer:stop()
	if done then
		-- the client is closed: close every handle, so uv.run() returns
		-- (wsbeat.timeout() always has a next deadline)
		poll:close()
		timer:close()
		ticker:close()
		if not sender:is_closing() then sender:close() end
		return
	end
	if t then timer:start(math.ceil(t * 1000), 0, drive) end
end

local sent = 0
local ws
ws = wsbeat.connect(url, {
	on_state = function(_, state)
		if state == "open" then
			-- a luv timer feeds the client: one message every 20 ms
			sender:start(20, 20, function()
				sent = sent + 1
				ws:send("luv " .. sent)
				if sent == n then sender:stop() sender:close() end
			end)
		elseif state == "closed" then
			done = true
		end
	end,
	on_message = function(client, data)
		echoes = echoes + 1
		assert(data == "luv " .. echoes, "out of order: " .. data)
		if echoes == n then client:close(1000, "luv done") end
	end,
})

poll:start("r", function(err)
	assert(not err, err)
	drive()
end)
ticker:start(10, 10, function() ticks = ticks + 1 end) -- luv's own work
drive()
uv.run()
print(("echoes=%d ticks=%d state=%s"):format(echoes, ticks, ws:state()))
