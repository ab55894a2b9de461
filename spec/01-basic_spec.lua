local H = require "helper"

for _, kind in ipairs { "python", "node" } do
	describe("echo against " .. kind .. " peer", function()
		local srv
		setup(function() srv = H.server { kind = kind } end)
		teardown(function() srv:stop() end)

		it("opens, echoes text and binary in order, closes with the user's code", function()
			local ws, rec = H.client(srv:url("/echo?a=1&b=2"), {
				on_state = function(ws, st)
					if st == "open" then
						assert.is_true(ws:send("one"))
						assert.is_true(ws:send("\0\1\2\255", "binary"))
						assert.is_true(ws:send("three"))
					end
				end,
			})
			assert.equal("connecting", ws:state())
			H.run_until(function() return #rec.messages == 3 end, 5, "3 echoes")
			assert.same({ { data = "one", kind = "text" }, { data = "\0\1\2\255", kind = "binary" },
				{ data = "three", kind = "text" } }, rec.messages)
			ws:close(4001, "bye")
			H.wait_state(ws, "closed")
			assert.same({ "open", "closing", "closed" }, rec.states)
			assert.equal("closed_by_user", rec.infos[3].cause)
			assert.equal("closing", rec.infos[3].previous)
			assert.equal(0, rec.infos[3].unsent)
			local ev = srv:wait_event("close")
			assert.equal(4001, ev.code)
			assert.equal("bye", ev.reason)
			local conn = srv:wait_event("connect")
			assert.equal("/echo?a=1&b=2", conn.path)
			assert.equal("127.0.0.1:" .. srv.port, conn.headers.host)
		end)

		it("answers a server-initiated close so the server sees a clean close", function()
			local ws, rec = H.client(srv:url("/close/4002?reason=later"), { reconnect = false })
			H.wait_state(ws, "closed")
			assert.same({ "open", "closed" }, rec.states)
			local info = rec.infos[2]
			assert.equal("closed_by_peer", info.cause)
			assert.equal(4002, info.code)
			assert.matches("server closed %(4002", info.reason)
			local ev = srv:wait_event("close", function(e) return e.code == 4002 end)
			assert.equal("later", ev.reason)
		end)

		it("reports a refused HTTP upgrade with its status and does not retry a 403", function()
			local ws, rec = H.client(srv:url("/status/403"))
			H.wait_state(ws, "closed")
			assert.same({ "closed" }, rec.states)
			assert.equal("http_status", rec.infos[1].cause)
			assert.equal(403, rec.infos[1].status)
			assert.equal("handshake failed: HTTP 403", rec.infos[1].reason)
		end)
	end)
end
