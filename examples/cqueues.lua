-- wsbeat under cqueues: several clients in one controller, receive() inside
-- cqueues coroutines (it waits through cqueues), and a client used directly
-- as a pollable object (cqueues.poll(ws)).
-- usage: lua5.4 examples/cqueues.lua ws://127.0.0.1:PORT [CLIENTS] [N]
local cqueues = require "cqueues"
local wsbeat = require "wsbeat"

local base = assert(arg[1], "usage: cqueues.lua ws://HOST:PORT [CLIENTS] [N]")
local clients, n = tonumber(arg[2]) or 3, tonumber(arg[3]) or 5
local cq = cqueues.new()
local got, ticks, closed = {}, 0, 0

for c = 1, clients do
	cq:wrap(function()
		local ws = wsbeat.connect(base .. "/echo?client=" .. c)
		for i = 1, n do ws:send(("c%d m%d"):format(c, i)) end -- buffered until open
		got[c] = {}
		for _ = 1, n do
			local data = assert(ws:receive(5))
			got[c][#got[c] + 1] = data
		end
		ws:close(1000, "cqueues done")
		assert(select(2, ws:receive(5)) == "closed")
		closed = closed + 1
	end)
end

-- the controller's own work, next to the clients, until they are closed
cq:wrap(function()
	while closed < clients do
		cqueues.sleep(0.01)
		ticks = ticks + 1
	end
end)

-- a client as a plain pollable: wait for the engine, then step
cq:wrap(function()
	local ws = wsbeat.connect(base .. "/send/1/3", { on_message = function() end })
	while ws:state() ~= "open" do
		cqueues.poll(ws, 1)
		wsbeat.step()
	end
	ws:close()
	while ws:state() ~= "closed" do cqueues.poll(ws, 1) wsbeat.step() end
end)

assert(cq:loop(10)) -- returns when every coroutine has ended (or after 10 s)
local ok = true
for c = 1, clients do
	for i = 1, n do
		if got[c][i] ~= ("c%d m%d"):format(c, i) then ok = false end
	end
end
print(("clients=%d messages=%d in_order=%s ticks=%d"):format(clients, clients * n, tostring(ok), ticks))
