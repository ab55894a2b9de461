-- A server finds dead clients as quickly as a client finds a dead server:
-- a frozen client (SIGSTOP), a blackholed link, many clients that vanish
-- at once; its slots and memory come back.  And no live client is declared
-- dead when the server's own process was paused.
local H = require "helper"
local wsbeat = require "wsbeat"
local core = require "wsbeat.core"
local json = require "dkjson"

local function py_client(url, script)
	return H.start_peer({ H.PYTHON, H.ROOT .. "/spec/fixtures/client.py", url, json.encode(script) },
		{ name = "client", ready = "^START" })
end

-- A server that records closes, with the given heartbeat.
local function server(interval, timeout, extra)
	local rec = { closed = {}, opened = 0 }
	local opts = {
		port = 0, heartbeat = { interval = interval, timeout = timeout },
		on_state = function(conn, st, info)
			if st == "open" then rec.opened = rec.opened + 1 end
			if st == "closed" then
				rec.closed[#rec.closed + 1] = { t = core.now(), cause = info.cause, code = info.code, conn = conn }
			end
		end,
		on_message = function(conn, data) conn:send(data) end,
	}
	for k, v in pairs(extra or {}) do opts[k] = v end
	local s = assert(wsbeat.listen(opts))
	rec.url = ("ws://127.0.0.1:%d/"):format(s:port())
	return s, rec
end

describe("dead clients #server", function()
	it("a frozen client (SIGSTOP) is closed within interval + timeout; its slot is released", function()
		local I, T = 0.3, 0.3
		local s, rec = server(I, T)
		local peer = py_client(rec.url, { { send = "hi" }, { recv = 1 }, { wait_close = 60 } })
		finally(function() peer:stop(); s:close() end)
		H.run_until(function() return rec.opened == 1 and s:stats().messages_received == 1 end, 10, "open")
		-- a few heartbeat cycles on the live link: nothing happens
		local t_live = core.now() + 3 * (I + T)
		H.run_until(function() return core.now() >= t_live end, 5)
		assert.equal(0, #rec.closed)
		peer:signal("STOP")
		local t_stop = core.now()
		H.run_until(function() return #rec.closed == 1 end, 10, "detection")
		local dt = rec.closed[1].t - t_stop
		assert.equal("heartbeat_timeout", rec.closed[1].cause)
		-- the last pong came at most one interval before the stop; one
		-- probe grid step (25 ms) and a noisy machine's slack on top
		assert.is_true(dt >= T - 0.05, "detected too early: " .. dt)
		assert.is_true(dt <= (I + T + 0.025) * H.SLOW + 0.3, "detected after " .. dt)
		assert.equal("closed", rec.closed[1].conn:state())
		assert.equal(0, s:stats().connections)
		assert.equal(1, s:stats().upgraded)
	end)

	it("200 clients that vanish at once are all closed in bound; fds and memory come back (x3)", function()
		local I, T, N = 0.3, 0.3, 200
		local s, rec = server(I, T)
		finally(function() s:close() end)
		local fds0
		for round = 1, 3 do
			local peer = H.start_peer({ "node", "-e", ([[
				const WebSocket = require(%q);
				console.log('START');
				const all = [];
				for (let i = 0; i < %d; i++) all.push(new WebSocket(%q));
				setInterval(() => {}, 1000);
			]]):format(H.ROOT .. "/spec/fixtures/node_modules/ws", N, rec.url) }, { name = "many", ready = "^START" })
			H.run_until(function() return s:stats().connections == N end, 20, N .. " open")
			if round == 1 then fds0 = H.open_fds() end
			local closed0 = #rec.closed
			peer:signal("STOP")
			local t_stop = core.now()
			H.run_until(function() return #rec.closed == closed0 + N end, 20, "all detected")
			local worst = 0
			for i = closed0 + 1, #rec.closed do
				assert.equal("heartbeat_timeout", rec.closed[i].cause)
				worst = math.max(worst, rec.closed[i].t - t_stop)
			end
			assert.is_true(worst <= (I + T + 0.025) * H.SLOW + 1.0, "the last was detected after " .. worst)
			assert.equal(0, s:stats().connections)
			peer:stop()
			collectgarbage()
			collectgarbage()
			-- every connection's socket is gone (a few fds of slack for the
			-- helper's own pipes)
			H.run_until(function() return H.open_fds() <= fds0 - N + 5 end, 5, "fds released")
		end
		assert.equal(3 * N, s:stats().upgraded)
	end)

	it("a paused server (SIGSTOP for 10x the interval) declares no live client dead", function()
		local I, T = 0.3, 0.3
		local srv, port = H.start_peer(H.lua_argv(H.ROOT .. "/spec/fixtures/server_probe.lua",
			"serve", tostring(I), tostring(T)), { name = "server" })
		local url = ("ws://127.0.0.1:%s/"):format(port)
		local a = py_client(url, { { recv = 10000 } })
		local b = py_client(url, { { recv = 10000 } })
		finally(function() H.stop(a, b, srv) end)
		local function opened() return #srv:events("open") end
		local deadline = core.now() + 10 * H.SLOW
		while opened() < 2 and core.now() < deadline do H.sleep(0.05) end
		assert.equal(2, opened())
		local function ticks(peer)
			local n = 0
			for _, e in ipairs(peer:events("message")) do n = math.max(n, tonumber(e.text:match("tick (%d+)")) or 0) end
			return n
		end
		H.sleep(2 * (I + T)) -- a live heartbeat cycle or two (the server is another process)
		srv:signal("STOP")
		H.sleep(10 * I)
		local before = math.max(ticks(a), ticks(b))
		srv:signal("CONT")
		-- two full heartbeat cycles after the pause: ticks go on, nobody closed
		deadline = core.now() + 5 * H.SLOW
		while (ticks(a) < before + 20 or ticks(b) < before + 20) and core.now() < deadline do H.sleep(0.05) end
		assert.is_true(ticks(a) >= before + 20 and ticks(b) >= before + 20,
			("ticks stopped after the pause: %d, %d (before %d)"):format(ticks(a), ticks(b), before))
		assert.same({}, srv:events("closed"))
	end)
end)

describe("a blackholed client link (nft drop in a network namespace) #server #root #netns", function()
	it("is detected within interval + timeout", function()
		local ns = H.netns()
		local out
		local ok, err = pcall(function()
			local q = H.quote
			local client = ("%s %s ws://127.0.0.1:%%PORT%%/ %s"):format(H.PYTHON,
				q(H.ROOT .. "/spec/fixtures/client.py"),
				q(json.encode { { send = "hi" }, { recv = 1 }, { wait_close = 30 } }))
			out = ns:exec(("cd %s && LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;' "
				.. "lua5.4 spec/fixtures/server_probe.lua blackhole 0.2 0.3 %s 2>&1")
				:format(q(H.ROOT), q(client)))
		end)
		ns:delete()
		assert(ok, err)
		local r = assert(json.decode(out:match("(%b{})%s*$") or "null"), out)
		assert.is_true(r.ok, r.err)
		assert.equal("heartbeat_timeout", r.cause)
		-- the last pong came at most one interval (0.2) before the drop
		assert.is_true(r.dt >= 0.3 - 0.05 and r.dt <= 0.5 + 0.025 + 0.5, "detected after " .. r.dt)
		assert.equal(0, r.connections)
	end)
end)
