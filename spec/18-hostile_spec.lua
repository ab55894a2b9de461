-- Hostile and broken servers: the client ends cleanly, says why, and keeps
-- its memory bounded.
local H = require "helper"
local wsbeat = require "wsbeat"
local core = require "wsbeat.core"

local rss_kb = H.rss_kb

describe("broken upgrade answers", function()
	for _, case in ipairs {
		{ "endless-header", "an endless response header" },
		{ "huge-header", "a 1 MiB header line" },
		{ "garbage", "random bytes instead of HTTP" },
	} do
		it("fail fast on " .. case[2], function()
			local srv = H.server { raw = case[1] }
			finally(function() srv:stop() end)
			local t0 = core.now()
			local ws, rec = H.client(srv:url("/"), { reconnect = false, connect_timeout = 5 })
			H.wait_state(ws, "closed", 8)
			assert.same({ "closed" }, rec.states)
			local info = rec.infos[1]
			assert.equal("handshake", info.cause)
			assert.equal("handshake failed: invalid or oversized HTTP response", info.reason)
			assert.is_true(core.now() - t0 < 6 * H.SLOW)
		end)
	end

	it("end a slowloris upgrade (one byte per second) at connect_timeout", function()
		local srv = H.server { raw = "slowloris" }
		finally(function() srv:stop() end)
		local t0 = core.now()
		local ws, rec = H.client(srv:url("/"), { reconnect = false, connect_timeout = 1.5 })
		H.wait_state(ws, "closed", 5)
		assert.equal("connect_timeout", rec.infos[1].cause)
		local dt = core.now() - t0
		assert.is_true(dt >= 1.45 and dt < 3 * H.SLOW, "took " .. dt)
	end)
end)

describe("floods", function()
	local srv
	setup(function() srv = H.server {} end)
	teardown(function() srv:stop() end)

	it("a message flood into a client that does not read stays bounded (max_queue, flow control)", function()
		local base = rss_kb()
		local ws = wsbeat.connect(srv:url("/flood/msg/100000"), { max_queue = 16, heartbeat = { interval = 0.1, timeout = 0.3 } })
		H.wait_state(ws, "open")
		local t0 = core.now()
		H.run_until(function() return core.now() - t0 > 1.5 end, 3)
		local queued = ws:stats().queued
		assert.is_true(queued >= 16 and queued <= 16 + 64, "queued " .. queued) -- a TLS record or socket read past the mark at most
		assert.is_true(rss_kb() - base < 20 * 1024, "RSS grew by " .. (rss_kb() - base) .. " KiB")
		assert.equal("open", ws:state()) -- held-back input counts as alive
		-- reading again drains it all, in order
		local n = 0
		while n < 100000 do
			local data = assert(ws:receive(10))
			assert.equal(1024, #data)
			n = n + 1
		end
		assert.is_truthy(srv:wait_event("flooded"))
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("a ping flood is answered without growing memory, and the link stays up", function()
		local base = rss_kb()
		local ws, rec = H.client(srv:url("/flood/ping/200000"), { heartbeat = { interval = 0.1, timeout = 0.5 } })
		srv:wait_event("flooded", nil, 20)
		local t0 = core.now()
		H.run_until(function() return core.now() - t0 > 0.5 end, 2)
		assert.same({ "open" }, rec.states)
		assert.is_true(rss_kb() - base < 20 * 1024, "RSS grew by " .. (rss_kb() - base) .. " KiB")
		ws:close()
		H.wait_state(ws, "closed")
	end)
end)

describe("a server that stops reading", function()
	local srv
	setup(function() srv = H.server {} end)
	teardown(function() srv:stop() end)

	it("fills send_buffer, send says so, and a server still sending is not declared dead", function()
		local ws, rec = H.client(srv:url("/noread?tick=0.05"), {
			send_buffer = 256 * 1024, heartbeat = { interval = 0.1, timeout = 0.2 },
		})
		H.wait_state(ws, "open")
		local chunk = ("z"):rep(64 * 1024)
		local full
		H.run_until(function()
			local ok, err = ws:send(chunk, "binary")
			if not ok then full = err return true end
		end, 20, "send buffer full")
		assert.equal("send buffer full", full)
		assert.is_true(ws:stats().buffered > 128 * 1024)
		local t0 = core.now()
		H.run_until(function() return core.now() - t0 > 1 end, 3)
		assert.same({ "open" }, rec.states) -- its ticks keep proving it alive
		assert.is_true(#rec.messages >= 5)
		ws:close()
		H.wait_state(ws, "closed", 10) -- close_timeout: it never reads our close
		assert.equal("closed_by_user", rec.infos[#rec.infos].cause)
	end)

	it("a server that neither reads nor sends is declared dead by the heartbeat", function()
		local ws, rec = H.client(srv:url("/noread"), {
			reconnect = false, heartbeat = { interval = 0.1, timeout = 0.2 },
		})
		H.wait_state(ws, "open")
		for _ = 1, 50 do ws:send(("y"):rep(64 * 1024), "binary") end
		H.wait_state(ws, "closed", 5)
		assert.equal("heartbeat_timeout", rec.infos[#rec.infos].cause)
	end)
end)
