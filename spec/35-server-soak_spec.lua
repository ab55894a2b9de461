-- Server soak: thousands of connections come and go, thousands of clients
-- die; descriptors and memory must stay flat.
local H = require "helper"
local wsbeat = require "wsbeat"
local core = require "wsbeat.core"

local rss_kb = H.rss_kb

local function mark()
	collectgarbage()
	collectgarbage()
	return { fds = H.open_fds(), rss = rss_kb(), lua = math.floor(collectgarbage("count")) }
end

-- #soak: minutes of load; make test runs it, make test-fast does not
describe("server soak #server #soak", function()
	it("10,000 connect/disconnect cycles (100 at a time, each echoes a message)", function()
		local s = assert(wsbeat.listen { port = 0, on_message = function(c, d) c:send(d) end })
		finally(function() s:close() end)
		local url = ("ws://127.0.0.1:%d/"):format(s:port())
		local N, BATCH = 10000, 100
		local done, marks = 0, {}
		for batch = 1, H.idiv(N, BATCH) do
			local left = BATCH
			for i = 1, BATCH do
				wsbeat.connect(url, {
					reconnect = false, heartbeat = false,
					on_state = function(ws, st)
						if st == "open" then ws:send("cycle " .. i) end
						if st == "closed" then left = left - 1 end
					end,
					on_message = function(ws, data)
						assert(data == "cycle " .. i, data)
						ws:close()
					end,
				})
			end
			H.run_until(function() return left == 0 end, 20, "batch " .. batch)
			done = done + BATCH
			if done == 1000 or done == N then
				H.run_until(function() return s:stats().connections == 0 end, 5, "server side closed")
				marks[done] = mark()
			end
		end
		assert.equal(N, s:stats().upgraded)
		assert.equal(N, s:stats().messages_received)
		assert.is_true(marks[N].fds <= marks[1000].fds + 2, ("fds %d -> %d"):format(marks[1000].fds, marks[N].fds))
		assert.is_true(marks[N].rss - marks[1000].rss < 2048,
			("RSS %d -> %d KiB (Lua heap %d -> %d KiB)"):format(marks[1000].rss, marks[N].rss, marks[1000].lua, marks[N].lua))
	end)

	it("2,000 dead clients detected (8 rounds of 250 frozen at once), fds and memory flat", function()
		local I, T, N = 0.2, 0.2, 250
		local closed, opened = 0, 0
		local causes = {}
		local s = assert(wsbeat.listen {
			port = 0, heartbeat = { interval = I, timeout = T },
			on_state = function(_, st, info)
				if st == "open" then opened = opened + 1 end
				if st == "closed" then
					closed = closed + 1
					causes[info.cause] = (causes[info.cause] or 0) + 1
				end
			end,
		})
		finally(function() s:close() end)
		local url = ("ws://127.0.0.1:%d/"):format(s:port())
		local marks = {}
		for round = 1, 8 do
			local peer = H.start_peer({ "node", "-e", ([[
				const WebSocket = require(%q);
				console.log('START');
				for (let i = 0; i < %d; i++) new WebSocket(%q);
				setInterval(() => {}, 1000);
			]]):format(H.ROOT .. "/spec/fixtures/node_modules/ws", N, url) }, { name = "many", ready = "^START" })
			H.run_until(function() return s:stats().connections == N end, 20, "round " .. round .. " open")
			peer:signal("STOP")
			local t0 = core.now()
			H.run_until(function() return closed == round * N end, 20, "round " .. round .. " detected")
			assert.is_true(core.now() - t0 <= (I + T + 0.025) * H.SLOW + 1.5, "round took " .. (core.now() - t0))
			peer:stop()
			if round == 2 then
				marks[2] = mark()
			elseif round == 8 then
				-- (the sockets of the last round close as lws gets to
				-- them: judged on a reading taken when they have)
				H.run_until(function()
					local m = mark()
					if m.fds <= marks[2].fds then marks[8] = m end
					return marks[8]
				end, 5, "fds back")
			end
		end
		assert.same({ heartbeat_timeout = 8 * N }, causes)
		assert.equal(8 * N, opened)
		assert.is_true(marks[8].fds <= marks[2].fds, ("fds %d -> %d"):format(marks[2].fds, marks[8].fds))
		assert.is_true(marks[8].rss - marks[2].rss < 2048,
			("RSS %d -> %d KiB (Lua heap %d -> %d KiB)"):format(marks[2].rss, marks[8].rss, marks[2].lua, marks[8].lua))
	end)
end)
