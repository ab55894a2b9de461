-- The waker (src/waker.c): a thread that waits on the engine's fd for a
-- host that cannot (nginx) and answers on a unix socket, "<ms>\n" -> "!".
-- Driven here as wsbeat.openresty drives it, through LuaSocket's unix
-- sockets in this process.
local H = require "helper"
local wsbeat = require "wsbeat"
local core = require "wsbeat.core"
local unix = require "socket.unix"
local now = core.now

-- Ask for a wake-up within ms; returns the seconds it took and what came.
local function exchange(c, ms, between)
	local t0 = now()
	assert(c:send(ms .. "\n"))
	if between then between() end
	c:settimeout(10)
	local b, err = c:receive(1)
	return now() - t0, b or err
end

describe("the waker #openresty", function()
	it("lives in a fresh 0700 directory until this process connects, then is unlinked", function()
		local path = assert(core.waker_listen())
		local dir = path:match("^(.*)/wake$")
		assert.truthy(dir)
		assert.equal("drwx------", H.sh("stat -c %A " .. H.quote(dir)):sub(1, 10))
		local c = assert(unix())
		finally(function() c:close() end)
		assert(c:connect(path))
		local took, got = exchange(c, 0)
		assert.equal("!", got)
		assert.is_true(took < 1)
		assert.equal("gone\n", H.sh(("test -e %s || echo gone"):format(H.quote(dir))))
	end)

	it("answers when the time is up with nothing to do, not before", function()
		wsbeat.step() -- (nothing due now: the engine is idle)
		local c = assert(unix())
		finally(function() c:close() end)
		assert(c:connect(assert(core.waker_listen())))
		local took, got = exchange(c, 200)
		assert.equal("!", got)
		assert.is_true(took >= 0.19 and took < 0.2 + 1 * H.SLOW, "took " .. took)
		-- and again: one answer per request
		took, got = exchange(c, 100)
		assert.equal("!", got)
		assert.is_true(took >= 0.09 and took < 0.1 + 1 * H.SLOW, "took " .. took)
	end)

	it("answers as soon as the engine has work: a message arrives, a send between steps", function()
		local srv = H.server {}
		local c = assert(unix())
		local ws
		finally(function()
			c:close()
			if ws then ws:close() end
			wsbeat.run(2)
			srv:stop()
		end)
		local got_msgs = {}
		ws = wsbeat.connect(srv:url("/echo"), { heartbeat = false, on_message = function(_, d) got_msgs[#got_msgs + 1] = d end })
		H.wait_state(ws, "open")
		assert(c:connect(assert(core.waker_listen())))
		-- a send made by the host between steps: the engine's own kick
		local took, got = exchange(c, 5000, function() assert(ws:send("ping-me")) end)
		assert.equal("!", got)
		assert.is_true(took < 1 * H.SLOW, "took " .. took)
		-- its echo arrives on the socket: each request for what
		-- wsbeat.timeout() allows (as wsbeat.openresty asks) is answered
		-- when there is work, long before the 5 s cap
		local deadline = now() + 5 * H.SLOW
		while not got_msgs[1] and now() < deadline do
			wsbeat.step()
			local t = math.min(wsbeat.timeout() or 5, 5)
			took, got = exchange(c, math.ceil(t * 1000))
			assert.equal("!", got)
			assert.is_true(took < 2 * H.SLOW, "took " .. took)
		end
		wsbeat.step()
		assert.same({ "ping-me" }, got_msgs)
	end)

	it("refuses a connection from another process, then serves this one", function()
		local path = assert(core.waker_listen())
		-- the other process connects first and reads: it gets EOF, no wake
		local other = H.sh(("/usr/bin/python3 -c %s"):format(H.quote(
			"import socket,sys\n" ..
			"s=socket.socket(socket.AF_UNIX); s.settimeout(5)\n" ..
			"try:\n" ..
			"  s.connect(sys.argv[1]); s.sendall(b'0\\n')\n" ..
			"  print('eof' if s.recv(1)==b'' else 'woken')\n" ..
			"except (ConnectionResetError, BrokenPipeError): print('eof')\n")) .. " " .. H.quote(path))
		assert.equal("eof\n", other)
		local c = assert(unix())
		finally(function() c:close() end)
		assert(c:connect(path))
		local _, got = exchange(c, 0)
		assert.equal("!", got)
	end)

	it("ends when the host closes its end; a new one can be made", function()
		for _ = 1, 3 do
			local c = assert(unix())
			assert(c:connect(assert(core.waker_listen())))
			local _, got = exchange(c, 0)
			assert.equal("!", got)
			c:close()
		end
	end)
end)
