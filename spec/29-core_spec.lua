-- What the C core's restructure keeps true, tested on its own: the retry
-- policy (pure, no network), the engine's self-test of libuv's watcher
-- queue, and what that private read exists for: a PONG that lws owes
-- leaves before a reply written straight from on_message.
local H = require "helper"
local core = require "wsbeat.core"

describe("the retry policy (pure)", function()
	local cases = {
		-- cause, code, status, retried?
		{ "refused", 0, 0, true }, { "dns", 0, 0, true }, { "network", 0, 0, true },
		{ "connect_timeout", 0, 0, true }, { "handshake", 0, 0, true },
		{ "heartbeat_timeout", 1006, 0, true }, { "connection_lost", 1006, 0, true },
		{ "proxy", 0, 502, true }, { "proxy_auth", 0, 407, false },
		{ "tls", 0, 0, false }, { "too_big", 1009, 0, false }, { "protocol_error", 1002, 0, false },
		{ "http_status", 0, 408, true }, { "http_status", 0, 429, true }, { "http_status", 0, 503, true },
		{ "http_status", 0, 302, true }, { "http_status", 0, 403, false }, { "http_status", 0, 404, false },
		{ "closed_by_peer", 1000, 0, true }, { "closed_by_peer", 1001, 0, true },
		{ "closed_by_peer", 1005, 0, true }, { "closed_by_peer", 1006, 0, true },
		{ "closed_by_peer", 1011, 0, true }, { "closed_by_peer", 1014, 0, true },
		{ "closed_by_peer", 4000, 0, true }, { "closed_by_peer", 4999, 0, true },
		{ "closed_by_peer", 1002, 0, false }, { "closed_by_peer", 1003, 0, false },
		{ "closed_by_peer", 1007, 0, false }, { "closed_by_peer", 1008, 0, false },
		{ "closed_by_peer", 1009, 0, false }, { "closed_by_peer", 1010, 0, false },
		{ "closed_by_peer", 3000, 0, false },
	}
	for _, c in ipairs(cases) do
		it(("%s %d %d: %s"):format(c[1], c[2], c[3], c[4] and "retried" or "stops"), function()
			assert.equal(c[4], core._retry(c[1], c[2], c[3]))
		end)
	end

	it("backoff: delay * factor^(n-1), capped, less up to jitter of it, at least Retry-After", function()
		assert.equal(1, core._backoff(1, 2, 30, 0, 1, 0.7))
		assert.equal(8, core._backoff(1, 2, 30, 0, 4, 0.7))
		assert.equal(30, core._backoff(1, 2, 30, 0, 10, 0.7))
		assert.equal(30, core._backoff(1, 2, 30, 0, 5000, 0.7)) -- (overflow: the cap)
		assert.equal(8 - 8 * 0.5 * 0.25, core._backoff(1, 2, 30, 0.5, 4, 0.25))
		assert.equal(0, core._backoff(1, 2, 30, 1, 1, 1))
		assert.equal(12, core._backoff(1, 2, 30, 0.5, 1, 0.5, 12))
		assert.equal(8, core._backoff(1, 2, 30, 0, 4, 0, 3))
	end)

	it("names close codes", function()
		assert.equal("going away", core._close_code_name(1001))
		assert.equal("message too big", core._close_code_name(1009))
		assert.equal("application", core._close_code_name(4321))
		assert.equal("unknown", core._close_code_name(2999))
	end)
end)

describe("the engine", function()
	it("reads libuv's watcher queue as expected on this libuv (its self-test passed)", function()
		assert.is_true(core._selftest())
	end)

	for _, tls in ipairs { false, true } do
		local scheme = tls and "wss" or "ws"
		it(scheme .. ": the PONG lws owes leaves before a reply sent from on_message", function()
			local srv = H.server { tls = tls }
			finally(function() srv:stop() end)
			local answered = 0
			local ws = H.client(srv:url("/pingthen"), {
				reconnect = false,
				tls = tls and { ca_file = H.certs() .. "/ca.pem" } or nil,
				on_state = function(ws, st) if st == "open" then ws:send("go") end end,
				on_message = function(ws, data)
					if data == "reply-now" then
						answered = answered + 1
						ws:send("answer " .. answered)
						if answered < 20 then ws:send("go") end
					end
				end,
			})
			H.run_until(function() return answered >= 20 end, 10, "20 rounds")
			-- wire order as the server read it: after each PING, its PONG
			-- comes before the answer to the text that followed the PING
			H.run_until(function()
				for _, e in ipairs(srv:events("frame")) do
					if e.data == "answer 20" then return true end
				end
			end, 5, "the last answer")
			local pongs, answers = 0, 0
			for _, e in ipairs(srv:events("frame")) do
				if e.opcode == 10 then pongs = pongs + 1 end
				if e.opcode == 1 and e.data:match("^answer ") then
					answers = answers + 1
					assert.is_true(pongs >= answers,
						("answer %d reached the server before the PONG of its round"):format(answers))
				end
			end
			assert.equal(20, answers)
			ws:close()
			H.wait_state(ws, "closed")
		end)
	end
end)
