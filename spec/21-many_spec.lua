-- Many clients in one engine: more connection attempts than the engine runs
-- at once (WSB_MAX_ATTEMPTS = 256) wait their turn, and their wait does not
-- count against connect_timeout.
local H = require "helper"
local wsbeat = require "wsbeat"
local core = require "wsbeat.core"

describe("many clients #slow", function()
	it("600 clients started at once all open and close (more than 256 attempts)", function()
		local srv = H.server { kind = "node" }
		finally(function() srv:stop() end)
		local N, open, closed = 600, 0, 0
		local clients = {}
		for i = 1, N do
			clients[i] = wsbeat.connect(srv:url("/echo"), {
				reconnect = false, heartbeat = false, connect_timeout = 20,
				on_state = function(_, st)
					if st == "open" then open = open + 1 end
					if st == "closed" then closed = closed + 1 end
				end,
			})
		end
		H.run_until(function() return open + closed == N end, 40, "600 attempts")
		assert.equal(N, open)
		-- the server's log lines may trail a little
		H.run_until(function() return #srv:events("connect") >= N end, 5, "600 connects logged")
		assert.equal(N, #srv:events("connect"))
		for _, ws in ipairs(clients) do ws:close() end
		H.run_until(function() return closed == N end, 20, "600 closes")
		assert.equal(0, wsbeat.stats().open)
	end)

	it("an attempt waiting for a slot is not timed out by the wait", function()
		-- 300 upgrades that are never answered: 256 run and time out after
		-- connect_timeout; the other 44 start only then and time out one
		-- connect_timeout later
		local srv = H.server {}
		finally(function() srv:stop() end)
		local N, T = 300, 1.5 * H.SLOW
		local t0 = core.now()
		local ended = {}
		for _ = 1, N do
			wsbeat.connect(srv:url("/hang"), {
				reconnect = false, heartbeat = false, connect_timeout = T,
				on_state = function(_, st, info)
					if st == "closed" then ended[#ended + 1] = { t = core.now() - t0, cause = info.cause } end
				end,
			})
		end
		H.run_until(function() return #ended == N end, 4 * T + 5, "300 timeouts")
		-- the first 256 end about T after they started; the others start
		-- as those end, so they end at least T after the first end
		local first = math.huge
		for _, e in ipairs(ended) do first = math.min(first, e.t) end
		local early, late = 0, 0
		for _, e in ipairs(ended) do
			assert.equal("connect_timeout", e.cause)
			assert.is_true(e.t >= T - 0.05, "timed out after " .. e.t .. " s")
			if e.t >= first + 0.9 * T then late = late + 1 else early = early + 1 end
		end
		assert.equal(256, early)
		assert.equal(44, late)
	end)
	it("clients closed while they wait for a slot leave the queue; the rest keep their order", function()
		local srv = H.server {}
		finally(function() srv:stop() end)
		local N = 270 -- 256 hold a slot, 14 wait
		local clients, closed = {}, {}
		for i = 1, N do
			clients[i] = wsbeat.connect(srv:url("/hang?i=" .. i), {
				reconnect = false, heartbeat = false, connect_timeout = 60,
				on_state = function(_, st, info) if st == "closed" then closed[i] = info.cause end end,
			})
		end
		H.run_until(function() return #srv:events("hang") == 256 end, 20, "256 upgrades")
		-- out of the queue: its head, its tail and two in the middle
		for _, i in ipairs { 260, 257, 270, 265 } do clients[i]:close() end
		H.run_until(function() return closed[257] and closed[260] and closed[265] and closed[270] end, 5,
			"queued clients closed")
		for _, i in ipairs { 257, 260, 265, 270 } do assert.equal("closed_by_user", closed[i]) end
		-- free ten slots: the ten still waiting start, in the order they came
		for i = 1, 10 do clients[i]:close() end
		H.run_until(function() return #srv:events("hang") == 266 end, 20, "ten more upgrades")
		local t_end = core.now() + 0.5 -- a moment for stray attempts to show
		H.run_until(function() return core.now() >= t_end end, 5)
		local hangs = srv:events("hang")
		assert.equal(266, #hangs)
		local seen = {}
		for k, e in ipairs(hangs) do
			local i = tonumber(e.path:match("i=(%d+)"))
			assert.is_nil(seen[i], "client " .. i .. " connected twice")
			seen[i] = k
		end
		for i = 1, 256 do assert.is_truthy(seen[i], "client " .. i .. " never connected") end
		local later = { 258, 259, 261, 262, 263, 264, 266, 267, 268, 269 }
		for k, i in ipairs(later) do assert.equal(256 + k, seen[i], "client " .. i .. " out of order") end
		for _, ws in ipairs(clients) do ws:close() end
		H.run_until(function()
			for i = 1, N do if not closed[i] then return false end end
			return true
		end, 20, "all closed")
	end)
end)
