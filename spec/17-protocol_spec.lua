-- A server that breaks the protocol: raw frames written by the fixture.
local H = require "helper"

describe("protocol violations by the server", function()
	local srv
	setup(function() srv = H.server {} end)
	teardown(function() H.stop(srv) end)

	-- A frame that arrives in the same read as the 101 response takes
	-- another path in libwebsockets 4.1.6, which then drops the link
	-- without a close frame (DESIGN.md, known limits); the frames whose
	-- close code the server must see are written once the client's first
	-- message arrived, so after the client has read the 101.
	local after = "?on=message"
	local function ready(ws, st) if st == "open" then ws:send("ready") end end

	it("invalid UTF-8 in a text message: closed with 1007 as the server sees it, not retried", function()
		local ws, rec = H.client(srv:url("/raw/8102ff41" .. after), { reconnect = { delay = 0.01 }, on_state = ready })
		H.wait_state(ws, "closed")
		assert.same({ "open", "closed" }, rec.states)
		assert.equal("protocol_error", rec.infos[2].cause)
		assert.equal(1007, rec.infos[2].code)
		assert.same({}, rec.messages)
		assert.equal(1007, srv:wait_event("close", function(e) return e.code == 1007 end).code)
	end)

	-- wsbeat reads the frames itself (DESIGN.md, "wsbeat reads its own
	-- frames") and fails the connection with the code RFC 6455 gives
	for _, case in ipairs {
		{ "RSV bits set", "c10161", 1002 },
		{ "a reserved opcode", "8301ff", 1002 },
		{ "a fragmented ping", "0900", 1002 },
		{ "a ping longer than 125 bytes", "897e0080" .. ("00"):rep(128), 1002 },
		{ "invalid UTF-8 in a close reason", "88040fa1ff41", 1007 },
		{ "a masked frame (RFC 6455 5.1)", "818537fa213d5f9f4d5158", 1002 },
	} do
		it(case[1] .. ": the server sees " .. case[3] .. ", cause protocol_error, not retried", function()
			local ws, rec = H.client(srv:url("/raw/" .. case[2] .. after), { reconnect = { delay = 0.01 }, on_state = ready })
			H.wait_state(ws, "closed")
			assert.same({ "open", "closed" }, rec.states)
			assert.equal("protocol_error", rec.infos[2].cause)
			assert.equal(case[3], rec.infos[2].code)
			assert.same({}, rec.messages)
			local path = "/raw/" .. case[2]
			local ev = srv:wait_event("close", function(e)
				local c = srv:events("connect")
				for _, cn in ipairs(c) do
					if cn.id == e.id then return cn.path:sub(1, #path) == path end
				end
			end)
			assert.equal(case[3], ev.code)
		end)
	end

	for _, case in ipairs {
		{ "RSV bits set", "c10161" },
		{ "a masked frame", "818537fa213d5f9f4d5158" },
	} do
		it("over wss too: " .. case[1] .. ", the server sees 1002 (sent through TLS)", function()
			local certs = H.certs()
			local tsrv = H.server { tls = true }
			finally(function() tsrv:stop() end)
			local ws, rec = H.client(tsrv:url("/raw/" .. case[2] .. after), {
				tls = { ca_file = certs .. "/ca.pem" }, reconnect = { delay = 0.01 }, on_state = ready,
			})
			H.wait_state(ws, "closed")
			assert.same({ "open", "closed" }, rec.states)
			assert.equal("protocol_error", rec.infos[2].cause)
			assert.equal(1002, rec.infos[2].code)
			assert.same({}, rec.messages)
			assert.equal(1002, tsrv:wait_event("close").code)
		end)
	end

	it("a close with an invalid code (1) is answered with 1002", function()
		local ws, rec = H.client(srv:url("/raw/88020001" .. after), { reconnect = false, on_state = ready })
		H.wait_state(ws, "closed")
		assert.equal(1002, rec.infos[2].code)
		assert.equal(1002, srv:wait_event("close", function(e) return e.code == 1002 end).code)
	end)
end)

describe("a server that closes while our reply is on its way", function()
	-- Autobahn 7.1.6: the server sends a big message, a close and a PING.
	-- The client echoes the message (it may, the close comes after it),
	-- lws answers the close and closes the socket at once.  The PING is
	-- still unread then, and closing a TCP socket with unread input makes
	-- the kernel send a reset and drop what it has not sent yet: the end
	-- of the echo and the close reply.  The server must see a clean 1000.
	local certs = H.certs()
	for _, scheme in ipairs { "ws", "wss" } do
		for _, size in ipairs { 256 * 1024, 1024 * 1024 } do
			it(("%s, %d KiB: the close reply arrives, no reset"):format(scheme, H.idiv(size, 1024)), function()
				local s = H.server { tls = scheme == "wss" }
				finally(function() s:stop() end)
				local ws, rec = H.client(s:url("/closeping/" .. size .. "?wait=" .. 0.3 * H.SLOW), {
					tls = scheme == "wss" and { ca_file = certs .. "/ca.pem" } or nil,
					reconnect = false, send_buffer = 4 * size,
					on_message = function(w, data) w:send(data, "binary") end,
				})
				H.wait_state(ws, "closed", 10)
				assert.equal(size, #rec.messages[1].data)
				assert.equal("closed_by_peer", rec.infos[#rec.infos].cause)
				assert.equal(1000, rec.infos[#rec.infos].code)
				local ev = s:wait_event("close")
				assert.equal(1000, ev.code, "the server saw " .. tostring(ev.code))
			end)
		end
	end
end)
