-- Soak: thousands of reconnects and a hundred thousand messages in one
-- process; descriptors and memory must stay flat.
local H = require "helper"
local wsbeat = require "wsbeat"

local rss_kb = H.rss_kb

-- #soak: minutes of load; make test runs it, make test-fast does not
describe("soak #soak", function()
	it("2,000 reconnect cycles against a server that drops every connection", function()
		local srv = H.server {}
		finally(function() srv:stop() end)
		local opens = 0
		local marks = {}
		local ws = wsbeat.connect(srv:url("/abort"), {
			heartbeat = false,
			reconnect = { delay = 0.001, max_delay = 0.001, jitter = 0, min_uptime = 0 },
			on_state = function(_, st) if st == "open" then opens = opens + 1 end end,
		})
		H.run_until(function()
			if (opens == 200 or opens == 2000) and not marks[opens] then
				collectgarbage() collectgarbage()
				marks[opens] = { fds = H.open_fds(), rss = rss_kb() }
			end
			return opens >= 2000 and marks[2000]
		end, 120, "2000 reconnects")
		ws:close()
		H.wait_state(ws, "closed")
		assert.is_true(marks[2000].fds <= marks[200].fds + 1,
			("fds %d -> %d"):format(marks[200].fds, marks[2000].fds))
		assert.is_true(marks[2000].rss - marks[200].rss < 1024,
			("RSS %d -> %d KiB"):format(marks[200].rss, marks[2000].rss))
		assert.is_true(ws:stats().reconnects >= 1999)
	end)

	it("100,000 echoed messages", function()
		local srv = H.server { kind = "quiet" }
		finally(function() srv:stop() end)
		local N, window = 100000, 256
		local sent, got, marks = 0, 0, {}
		-- a full collection every 10,000 messages: each mark then follows the
		-- same peak of garbage, so RSS shows what the C side keeps (LuaJIT's
		-- allocator keeps its peak heap mapped; from 10,000 to 100,000
		-- messages uncollected, that peak grew RSS by 1.1 MiB)
		local collected = 0
		local ws
		local function refill()
			while sent < N and sent - got < window do
				sent = sent + 1
				assert(ws:send(("message %06d"):format(sent)))
			end
		end
		ws = wsbeat.connect(srv:url("/"), {
			on_state = function(_, st) if st == "open" then refill() end end,
			on_message = function(_, data)
				got = got + 1
				if data ~= ("message %06d"):format(got) then error("out of order at " .. got .. ": " .. data) end
				refill()
			end,
		})
		H.run_until(function()
			if got >= collected + 10000 then
				collected = got - got % 10000
				collectgarbage()
			end
			if (got >= 10000 and not marks[1]) or (got >= N and not marks[2]) then
				collectgarbage() collectgarbage()
				marks[#marks + 1] = { fds = H.open_fds(), rss = rss_kb() }
			end
			return got >= N and marks[2]
		end, 120, "100k echoes")
		ws:close()
		H.wait_state(ws, "closed")
		assert.equal(N, ws:stats().messages_received)
		assert.is_true(marks[2].fds <= marks[1].fds, ("fds %d -> %d"):format(marks[1].fds, marks[2].fds))
		assert.is_true(marks[2].rss - marks[1].rss < 1024, ("RSS %d -> %d KiB"):format(marks[1].rss, marks[2].rss))
	end)
end)
