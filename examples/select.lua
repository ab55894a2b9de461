-- wsbeat with LuaSocket's socket.select: each client answers getfd() and
-- dirty(), so it can sit in select()'s read set next to LuaSocket sockets.
-- Here a LuaSocket UDP socket on loopback (the program's "other" input)
-- shares the loop with a wsbeat client.
-- usage: lua5.4 examples/select.lua ws://127.0.0.1:PORT/echo [N]
local socket = require "socket"
local wsbeat = require "wsbeat"

local url, n = assert(arg[1], "usage: select.lua URL [N]"), tonumber(arg[2]) or 10
local echoes, datagrams = 0, 0

local udp = assert(socket.udp())
assert(udp:setsockname("127.0.0.1", 0))
local _, uport = udp:getsockname()
local sender = assert(socket.udp())

local ws = wsbeat.connect(url, {
	on_state = function(ws, state)
		if state == "open" then for i = 1, n do ws:send("select " .. i) end end
	end,
	on_message = function(ws, data)
		echoes = echoes + 1
		assert(data == "select " .. echoes, "out of order: " .. data)
		sender:sendto("got " .. echoes, "127.0.0.1", uport)
		if echoes == n then ws:close(1000, "select done") end
	end,
})

while ws:state() ~= "closed" do
	local t = wsbeat.timeout()
	if not t or t > 1 then t = 1 end
	local readable = socket.select({ ws, udp }, nil, t)
	for _, s in ipairs(readable) do
		if s == udp then
			assert(udp:receive())
			datagrams = datagrams + 1
		end
	end
	wsbeat.step() -- cheap when nothing is due
end
-- drain the datagrams still queued
udp:settimeout(0.5)
while datagrams < n and udp:receive() do datagrams = datagrams + 1 end
print(("echoes=%d datagrams=%d state=%s"):format(echoes, datagrams, ws:state()))
