-- Hostile and broken servers: the client ends cleanly, says why, and keeps
-- its memory bounded.
local H = require "helper"
local wsbeat = require "wsbeat"
local core = require "wsbeat.core"

local rss_kb = H.rss_kb

describe("broken upgrade answers", function()
	-- What a user is promised when the server's answer to the upgrade is
	-- not HTTP: no "open", cause "handshake", a reason that says so, and
	-- all of it at once (long before connect_timeout), not a hang.
	-- The bytes are fixed (spec/fixtures/rawhttp.py makes its noise from a
	-- fixed seed), so each case has one outcome: random bytes gave a reason
	-- that depended on where a CR or LF happened to fall.  The cases are
	-- ones any HTTP parser has to refuse for the reason given: a head that
	-- grows past the size limit without ending, or a head that ends
	-- without a status line.
	local OVERSIZED = "handshake failed: invalid or oversized HTTP response"
	local NO_STATUS = "handshake failed: no HTTP status line in the response"
	for _, case in ipairs {
		{ "endless-header", "an endless response header", OVERSIZED },
		{ "huge-header", "a 1 MiB header line", OVERSIZED },
		{ "garbage-noise", "64 KiB of binary noise with no line end", OVERSIZED },
		{ "garbage-lines", "64 KiB of noise lines that never end the head", OVERSIZED },
		{ "garbage-zeros", "64 KiB of NUL bytes", OVERSIZED },
		{ "garbage-headless", "a head of header lines without a status line", NO_STATUS },
	} do
		it("fail fast on " .. case[2], function()
			local srv = H.server { raw = case[1] }
			finally(function() srv:stop() end)
			local t0 = core.now()
			local ws, rec = H.client(srv:url("/"), { reconnect = false, connect_timeout = 5 * H.SLOW })
			H.wait_state(ws, "closed", 8)
			local dt = core.now() - t0
			assert.same({ "closed" }, rec.states)
			local info = rec.infos[1]
			assert.equal("handshake", info.cause)
			assert.equal(case[3], info.reason)
			assert.is_nil(info.status)
			-- at once, not at connect_timeout (5 s)
			assert.is_true(dt < 2 * H.SLOW, "took " .. dt)
		end)
	end

	it("end a slowloris upgrade (one byte per second) at connect_timeout #slow", function()
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
	teardown(function() H.stop(srv) end)

	it("a message flood into a client that does not read stays bounded (max_queue, flow control) #slow", function()
		local base = rss_kb()
		local ws = wsbeat.connect(srv:url("/flood/msg/100000"), { max_queue = 16, heartbeat = { interval = 0.1, timeout = 0.3 } })
		H.wait_state(ws, "open")
		-- the queue fills (however long the server takes), then the flood
		-- goes on for 1.5 s into a client that does not read
		H.run_until(function() return ws:stats().queued >= 16 end, 10, "max_queue messages queued")
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
		local id = srv:wait_event("connect", function(e) return e.path == "/flood/msg/100000" end).id
		assert.is_truthy(srv:wait_event("flooded", function(e) return e.id == id end))
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("a ping flood is answered without growing memory, and the link stays up #slow", function()
		local base = rss_kb()
		-- the flood lasts about 1 s here: several heartbeat windows (0.2 s)
		local ws, rec = H.client(srv:url("/flood/ping/200000"), { heartbeat = { interval = 0.05, timeout = 0.15 } })
		-- until this connection's flood is over (not the one before it on
		-- this server), or the link went down under it
		local id = srv:wait_event("connect", function(e) return e.path == "/flood/ping/200000" end).id
		H.run_until(function()
			if #rec.states > 1 then return true end
			for _, e in ipairs(srv:events("flooded")) do
				if e.id == id then return true end
			end
		end, 20, "the ping flood")
		local t0 = core.now()
		H.run_until(function() return core.now() - t0 > 0.5 end, 2)
		assert.same({ "open" }, rec.states, "the link went down: " .. tostring((rec.infos[2] or {}).reason))
		assert.is_true(rss_kb() - base < 20 * 1024, "RSS grew by " .. (rss_kb() - base) .. " KiB")
		ws:close()
		H.wait_state(ws, "closed")
	end)
end)

describe("a server that stops reading", function()
	local srv
	setup(function() srv = H.server {} end)
	teardown(function() H.stop(srv) end)

	it("fills send_buffer, send says so, and a server still sending is not declared dead #slow", function()
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
		-- (ticks come every 50 ms; wait for them rather than assume them)
		H.run_until(function() return #rec.messages >= 5 end, 5, "5 ticks")
		assert.same({ "open" }, rec.states) -- its ticks keep proving it alive
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
