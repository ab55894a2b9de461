-- Bad input from the Lua side: every case gets a clear error or a documented
-- result; nothing crashes and nothing is lost silently.
local H = require "helper"
local wsbeat = require "wsbeat"

local function err_of(f, ...)
	local ok, err = pcall(f, ...)
	assert.is_false(ok, "expected an error")
	return err
end

describe("URLs", function()
	local bad = {
		["wss:/x"] = "invalid URL", ["ws:x"] = "invalid URL", ["://x"] = "invalid URL",
		[""] = "invalid URL", ["ws://"] = "URL has no host", ["WS://h:1x/"] = "invalid port",
		["ws://h:/"] = "empty port", ["ws://h:-1/"] = "invalid port", ["ws://h:99999999999999999999/"] = "port out of range",
		["ws://[::1/"] = "unterminated IPv6", ["ws://[]/"] = "URL has no host", ["ws://[1.2.3.4]/"] = "invalid IPv6",
		["ws://a b/"] = "invalid character in host", ["ws://h%20/"] = "invalid character in host",
		["ws://h]/"] = "invalid character in host", ["ws://@h/"] = "user information",
		["ftp://h/"] = "unsupported scheme 'ftp'", ["http://h/"] = "unsupported scheme 'http'",
		["ws://h/\n"] = "control character", ["ws://h/\0"] = "NUL byte",
		["ws://" .. ("a"):rep(300) .. "/"] = "host name too long",
		["ws://h/" .. ("p"):rep(5000)] = "URL path too long",
	}
	for url, msg in pairs(bad) do
		it(("rejects %q"):format(#url > 40 and url:sub(1, 40) .. "..." or url), function()
			local err = err_of(wsbeat.connect, url)
			assert.matches("bad argument #1 to 'connect'", err, 1, true)
			assert.matches(msg, err, 1, true)
		end)
	end

	it("accepts case-insensitive schemes, default ports, IPv6 and queries", function()
		for _, url in ipairs { "WS://127.0.0.1:9/", "wss://127.0.0.1:9", "ws://[::1]:9/?a=b", "ws://h-1.example_x:9/p?q" } do
			local ws = wsbeat.connect(url, { reconnect = false })
			assert.equal(url, ws:url())
			ws:close()
		end
		wsbeat.run(5)
	end)
end)

describe("options", function()
	local cases = {
		{ { connect_timeout = 0 / 0 }, "connect_timeout" }, { { connect_timeout = math.huge }, "connect_timeout" },
		{ { connect_timeout = -1 }, "connect_timeout" }, { { close_timeout = -math.huge }, "close_timeout" },
		{ { max_message_size = 0 }, "max_message_size" }, { { max_message_size = -5 }, "max_message_size" },
		{ { max_message_size = 1 / 0 }, "max_message_size" }, { { max_queue = 0.5 }, "max_queue" },
		{ { send_buffer = "1" }, "send_buffer" }, { { heartbeat = { interval = 0 / 0 } }, "heartbeat.interval" },
		{ { heartbeat = { timeout = 0 } }, "heartbeat.timeout" }, { { heartbeat = { message = 5 } }, "heartbeat.message" },
		{ { heartbeat = { mode = "message", message = "\255" } }, "heartbeat.message" },
		{ { heartbeat = "yes" }, "heartbeat" }, { { reconnect = 1 }, "reconnect" },
		{ { reconnect = { delay = -1 } }, "reconnect.delay" }, { { reconnect = { factor = 0.5 } }, "reconnect.factor" },
		{ { reconnect = { max_attempts = 0 } }, "reconnect.max_attempts" }, { { reconnect = { max_attempts = 1.5 } }, "reconnect.max_attempts" },
		{ { reconnect = { retry = true } }, "reconnect.retry" }, { { origin = "a\r\nX: y" }, "origin" },
		{ { origin = "a\0b" }, "origin" }, { { protocols = { "" } }, "protocols" }, { { protocols = { "a", "a" } }, "protocols" },
		{ { protocols = { "a,b" } }, "protocols" }, { { headers = { [1] = "x" } }, "headers" },
		{ { headers = { ["X-A"] = true } }, "headers" }, { { headers = { ["X-A"] = "a\0b" } }, "headers" },
		{ { headers = { ["Sec-WebSocket-Key"] = "x" } }, "headers" }, { { tls = { ca_file = "" } }, "tls" },
		{ { tls = { ca_file = "a\0b" } }, "tls" }, { { tls = { key_file = "k.pem" } }, "tls" },
		{ { tls = { server_name = "bad name" } }, "tls" }, { { tls = "on" }, "tls" },
		{ { [1] = true }, "unknown option" }, { { On_message = print }, "unknown option 'On_message'" },
	}
	for i, case in ipairs(cases) do
		it(("case %d names '%s'"):format(i, case[2]), function()
			local err = err_of(wsbeat.connect, "ws://127.0.0.1:9/", case[1])
			assert.matches("bad argument #2 to 'connect'", err, 1, true)
			assert.matches(case[2], err, 1, true)
		end)
	end
end)

describe("methods", function()
	local srv
	setup(function() srv = H.server {} end)
	teardown(function() H.stop(srv) end)

	it("on a closed client answer without raising (send, ping, close, receive, stats)", function()
		local ws = wsbeat.connect(srv:url("/echo?closed"))
		H.wait_state(ws, "open")
		ws:close()
		H.wait_state(ws, "closed")
		assert.same({ nil, "closed" }, { ws:send("x") })
		assert.same({ nil, "closed" }, { ws:ping("x") })
		ws:close() -- idempotent
		ws:close(4000, "again")
		assert.same({ nil, "closed" }, { ws:receive(0) })
		assert.equal("closed", ws:state())
		assert.is_table(ws:stats())
		assert.matches("%(closed%)$", tostring(ws))
	end)

	it("check argument types and ranges", function()
		local ws = wsbeat.connect(srv:url("/echo?args"))
		assert.matches("bad argument #1 to 'send'", err_of(function() return (ws:send(nil)) end), 1, true)
		assert.matches("bad argument #1 to 'send'", err_of(function() return (ws:send({})) end), 1, true)
		assert.matches("invalid option 'blob'", err_of(function() return ws:send("x", "blob") end), 1, true)
		for _, code in ipairs { 999, 1002, 1004, 1005, 1006, 1015, 2999, 5000, -1 } do
			assert.matches("close code must be 1000, 1001 or 3000-4999", err_of(function() return ws:close(code) end), 1, true)
		end
		assert.matches("number has no integer representation", err_of(function() return ws:close(1000.5) end), 1, true)
		assert.matches("longer than 123 bytes", err_of(function() return ws:close(1000, ("r"):rep(124)) end), 1, true)
		assert.matches("longer than 125 bytes", err_of(function() return ws:ping(("p"):rep(126)) end), 1, true)
		assert.matches("expected a timeout", err_of(function() return ws:receive(-1) end), 1, true)
		assert.matches("expected a timeout", err_of(function() return ws:receive(0 / 0) end), 1, true)
		assert.matches("wsbeat.client expected", err_of(function() return ws.send(io.stdout, "x") end), 1, true)
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("send embedded NULs and empty messages exactly", function()
		local ws, rec = H.client(srv:url("/echo?nul"), {
			on_state = function(ws, st)
				if st == "open" then
					ws:send("a\0b")
					ws:send("")
					ws:send("\0", "binary")
					ws:send("", "binary")
				end
			end,
		})
		H.run_until(function() return #rec.messages == 4 end, 5, "4 echoes")
		assert.same({ { data = "a\0b", kind = "text" }, { data = "", kind = "text" },
			{ data = "\0", kind = "binary" }, { data = "", kind = "binary" } }, rec.messages)
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("refuse a huge send while not open with 'send buffer full', and accept one that fits later", function()
		local ws = wsbeat.connect(srv:url("/echo?huge"), { send_buffer = 1024 })
		local ok, err = ws:send(("x"):rep(2048))
		assert.is_nil(ok)
		assert.equal("send buffer full", err)
		H.wait_state(ws, "open")
		assert.is_true(ws:send(("y"):rep(4 * 1024 * 1024))) -- one big message on an idle open link
		assert.equal("y", (ws:receive(10)):sub(1, 1))
		ws:close()
		H.wait_state(ws, "closed")
	end)
end)
