-- Randomized API exerciser: random sequences of connect, send, ping,
-- close, receive, step, spawn and garbage collection, some of them from
-- inside callbacks, against a real server with well- and ill-behaved paths,
-- and against wsbeat's own servers in this process (listen, broadcast,
-- accept, the connections' methods, close, collection).
-- Run under ASan+UBSan by spec/20-sanitizers_spec.lua (bounded) or by hand:
--   lua5.4 scripts/exerciser.lua ws://127.0.0.1:PORT SECONDS [SEED]
local wsbeat = require "wsbeat"
local core = require "wsbeat.core"

local base, seconds = assert(arg[1], "usage: exerciser.lua BASE SECONDS [SEED]"), tonumber(arg[2]) or 10
local seed = tonumber(arg[3]) or os.time()
math.randomseed(seed)
local R = math.random

local paths = { "/echo", "/echo", "/echo", "/abort", "/close/1001", "/close/4000", "/silent",
	"/status/503", "/status/403", "/send/20/3000", "/hang", "/raw/8102ff41", "/big/300000" }
local clients = {}
local counts = setmetatable({}, { __index = function() return 0 end })
local function count(k) counts[k] = counts[k] + 1 end

local function random_payload()
	local n = ({ 0, 1, 10, 125, 1000, 70000 })[R(6)]
	return ("x"):rep(n)
end

local function random_client()
	if #clients == 0 then return nil end
	return clients[R(#clients)]
end

-- wsbeat's own servers, made and dropped at random
local servers = {}

local function new_server()
	local s = wsbeat.listen {
		port = 0,
		heartbeat = R(2) == 1 and { interval = 0.02 * R(5), timeout = 0.05 * R(4) } or false,
		max_connections = R(20),
		handshake_timeout = 0.1 + R() * 0.5,
		on_full = R(2) == 1 and "close" or "refuse",
		send_buffer = ({ 100, 10000, 1000000 })[R(3)],
		max_queue = R(4),
		max_message_size = ({ 100, 100000, 16 * 1024 * 1024 })[R(3)],
		compression = R(2) == 1,
		on_message = R(2) == 1 and function(conn, data, kind)
			count("server message")
			if R(3) == 1 then conn:send(data, kind) end
			if R(30) == 1 then conn:close(4000, "bye") end
		end or nil,
		on_open = R(2) == 1 and function(conn)
			count("server open")
			if R(4) == 1 then conn:send("welcome") end
		end or nil,
		on_state = function(_, st) count("server state " .. st) end,
		on_upgrade = R(2) == 1 and function(req)
			if req.path == "/refuse" then return false, 403, "no" end
			return true
		end or nil,
	}
	servers[#servers + 1] = s
	count("listen")
end

local function server_act()
	if #servers == 0 or R(20) == 1 then return new_server() end
	local s = servers[R(#servers)]
	local op = R(6)
	if op == 1 then
		wsbeat.connect(("ws://127.0.0.1:%d%s"):format(s:port(), R(4) == 1 and "/refuse" or "/"),
			{ reconnect = false, heartbeat = false, compression = R(2) == 1, on_message = function(ws) if R(3) == 1 then ws:close() end end,
				on_state = function(ws, st) if st == "open" then ws:send(random_payload()) end end })
		count("server connect")
	elseif op == 2 then
		s:broadcast(random_payload(), R(2) == 1 and "binary" or "text", R(2) == 1 and function() return R(2) == 1 end or nil)
		count("broadcast")
	elseif op == 3 then
		for conn in s:clients() do
			local k = R(6)
			if k == 1 then conn:send(random_payload())
			elseif k == 2 then conn:ping("p")
			elseif k == 3 then conn:close(1000)
			elseif k == 4 then conn:stats() conn:request() conn:remote() tostring(conn)
			elseif k == 5 then pcall(conn.receive, conn, 0) -- (raises with on_message)
			end
		end
		count("server conns")
	elseif op == 4 then
		pcall(s.accept, s, 0) -- (raises with on_open)
		s:stats()
		tostring(s)
		count("accept")
	elseif op == 5 then
		-- close it (it waits, briefly) and drop it; or just drop it
		if R(2) == 1 then s:close(({ 1001, 1000, 4001 })[R(3)]) count("server close") end
		for i, v in ipairs(servers) do if v == s then table.remove(servers, i) break end end
	else
		collectgarbage("step", 10)
	end
end

local act -- forward
local function callbacks()
	return {
		on_state = function(ws, st)
			count("state " .. st)
			if R(10) == 1 then act(true) end
			if st == "open" and R(3) == 1 then ws:send("hello from open") end
		end,
		on_message = R(2) == 1 and function()
			count("message")
			if R(20) == 1 then act(true) end
		end or nil,
		on_error = R(2) == 1 and function() count("on_error") end or nil,
	}
end

function act(inside)
	if not inside and R(4) == 1 then return server_act() end
	local op = R(inside and 7 or 11)
	local ws = random_client()
	if op == 1 or #clients < 2 then
		local o = callbacks()
		o.heartbeat = R(2) == 1 and { interval = 0.02 * R(5), timeout = 0.05 * R(4) } or false
		o.reconnect = R(3) == 1 and false or { delay = 0.01, max_delay = 0.05, max_attempts = R(4) }
		o.max_queue = R(4)
		o.send_buffer = ({ 100, 10000, 1000000 })[R(3)]
		o.connect_timeout = 0.2 + R() * 0.5
		o.close_timeout = 0.1 + R() * 0.3
		local c = wsbeat.connect(base .. paths[R(#paths)], o)
		clients[#clients + 1] = c
		count("connect")
	elseif op == 2 then ws:send(random_payload(), R(2) == 1 and "binary" or "text") count("send")
	elseif op == 3 then ws:ping(("p"):rep(R(0, 125))) count("ping")
	elseif op == 4 then ws:close(({ 1000, 3000, 4999 })[R(3)], ("r"):rep(R(0, 123))) count("close")
	elseif op == 5 then ws:stats() tostring(ws) ws:state() ws:protocol() count("introspect")
	elseif op == 6 then
		if not ws:_info().on_message then ws:receive(0) count("receive0") end
	elseif op == 7 then
		-- drop references: closed ones get collected, live ones must not
		if R(2) == 1 then table.remove(clients, R(#clients)) end
		collectgarbage("step", 10)
		count("gc")
	elseif op == 8 then
		local ok = pcall(wsbeat.step)
		count(ok and "step" or "step raised")
	elseif op == 9 then
		wsbeat.spawn(function()
			local c = wsbeat.connect(base .. "/send/3/10", { reconnect = false })
			for _ = 1, 3 do if not c:receive(0.5) then break end end
			c:close()
		end)
		count("spawn")
	elseif op == 10 then
		if ws and not ws:_info().on_message then ws:receive(R() * 0.02) count("receive") end
	else
		collectgarbage()
		count("full gc")
	end
end

local t0 = core.now()
local iterations = 0
while core.now() - t0 < seconds do
	iterations = iterations + 1
	act(false)
	local ok = pcall(function()
		core.wait(0.002)
		wsbeat.step()
	end)
	if not ok then count("step raised") end
	if #clients > 40 then
		for i = 1, 20 do clients[i]:close() end
		for _ = 1, 20 do table.remove(clients, 1) end
	end
end
for _, c in ipairs(clients) do c:close() end
clients = {}
for _, s in ipairs(servers) do s:close() end
servers = {}
pcall(wsbeat.run, 5)
collectgarbage() collectgarbage()
local keys = {}
for k in pairs(counts) do keys[#keys + 1] = k end
table.sort(keys)
local parts = {}
for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. counts[k] end
print(("seed=%d iterations=%d %s"):format(seed, iterations, table.concat(parts, " ")))
print("EXERCISER DONE")
