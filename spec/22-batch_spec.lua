-- Messages sent from callbacks leave together when the batch of callbacks
-- is delivered (one write, over TLS one record), in the order of the calls,
-- and are not lost when that write fails.
local H = require "helper"
local wsbeat = require "wsbeat"
local core = require "wsbeat.core"
local certs = H.certs()

local function tls_for(scheme)
	return scheme == "wss" and { ca_file = certs .. "/ca.pem" } or nil
end

-- The server's log of what it received on connection id, in order.
local function received(s, id)
	local out = {}
	for _, e in ipairs(s:events()) do
		if e.event == "message" and (not id or e.id == id) then
			out[#out + 1] = e.kind == "text" and e.data or ("binary:" .. e.len)
		end
	end
	return out
end

describe("sends from callbacks and spawned coroutines", function()
	for _, scheme in ipairs { "ws", "wss" } do
		it(scheme .. ": a busy batch (texts, binaries past the batch limit, pings, a close) reaches the server in call order", function()
			local s = H.server { tls = scheme == "wss" }
			finally(function() s:stop() end)
			local want, n = {}, 0
			local ws, rec = H.client(s:url("/send/30/8?then=log"), {
				tls = tls_for(scheme), reconnect = false,
				on_message = function(w)
					n = n + 1
					for j = 1, 2 do
						local t = ("m%d-%d"):format(n, j)
						assert(w:send(t))
						want[#want + 1] = t
					end
					-- sizes up to 20,000 B: some batches pass 16 KiB
					local size = n * 997 % 20011
					assert(w:send(H.big_pattern(n, size), "binary"))
					want[#want + 1] = "binary:" .. size
					if n % 7 == 0 then assert(w:ping("p" .. n)) end
					if n == 30 then
						assert(w:send("last"))
						want[#want + 1] = "last"
						w:close(4001, "bye")
					end
				end,
			})
			H.wait_state(ws, "closed", 10)
			assert.equal(30, n)
			assert.equal("closed_by_user", rec.infos[#rec.infos].cause)
			local ev = s:wait_event("close")
			assert.equal(4001, ev.code, "the server saw " .. tostring(ev.code))
			assert.same(want, received(s))
			local pings = 0
			for _, e in ipairs(s:events()) do
				if e.event == "ping" then pings = pings + 1 end
			end
			assert.equal(4, pings)
		end)
	end

	for _, scheme in ipairs { "ws", "wss" } do
		it(scheme .. ": messages sent just before close() from a callback go before the close frame", function()
			local s = H.server { tls = scheme == "wss" }
			finally(function() s:stop() end)
			local ws = H.client(s:url("/send/1/8?then=log"), {
				tls = tls_for(scheme), reconnect = false,
				on_message = function(w)
					for i = 1, 3 do assert(w:send("c" .. i)) end
					w:close(4002, "done")
				end,
			})
			H.wait_state(ws, "closed")
			assert.equal(4002, s:wait_event("close").code)
			assert.same({ "c1", "c2", "c3" }, received(s))
		end)
	end

	-- The client under strace: a callback (or a spawned coroutine woken by
	-- receive()) sends 50 messages; the server echoes them, then the client
	-- closes.
	local scripts = {
		callback = [[
wsbeat.connect(URL, {
	reconnect = false, heartbeat = false, tls = TLS,
	on_state = function(ws, st) if st == "open" then ws:send("start") end end,
	on_message = function(ws, data)
		if data == "start" then
			for i = 1, 50 do ws:send("n" .. i) end
		else
			got = got + 1
			if got == 50 then ws:close() end
		end
	end,
})
]],
		coroutine = [[
local ws = wsbeat.connect(URL, { reconnect = false, heartbeat = false, tls = TLS })
wsbeat.spawn(function()
	while ws:state() ~= "open" do
		local _, why = ws:receive(0.01)
		assert(why == "timeout", why)
	end
	ws:send("start")
	assert(ws:receive(10) == "start")
	for i = 1, 50 do ws:send("n" .. i) end
	for _ = 1, 50 do assert(ws:receive(10)); got = got + 1 end
	ws:close()
end)
]],
	}
	for _, scheme in ipairs { "ws", "wss" } do
		for _, mode in ipairs { "callback", "coroutine" } do
			it(("%s: 50 messages sent from one %s's turn leave in one write"):format(scheme, mode), function()
				local s = H.server { tls = scheme == "wss" }
				finally(function() s:stop() end)
				local dir = H.tmpdir()
				local script = ("%s/batch-%s-%s.lua"):format(dir, scheme, mode)
				local f = assert(io.open(script, "w"))
				f:write(([[
package.path = %q .. "/lua/?.lua;" .. %q .. "/lua/?/init.lua;" .. package.path
package.cpath = %q .. "/build/?.so;" .. package.cpath
local wsbeat = require "wsbeat"
local URL, TLS = %q, %s
local got = 0
]]):format(H.ROOT, H.ROOT, H.ROOT, s:url("/echo"),
					scheme == "wss" and ("{ ca_file = %q }"):format(certs .. "/ca.pem") or "nil"))
				f:write(scripts[mode])
				f:write([[
assert(wsbeat.run(20), "did not finish")
print("GOT " .. got)
]])
				f:close()
				local trace = script:gsub("%.lua$", ".strace")
				local out = H.sh(("strace -f -qq -e trace=connect,write,sendto,sendmsg,writev -o %s lua5.4 %s 2>&1")
					:format(H.quote(trace), H.quote(script)))
				assert.matches("GOT 50", out)
				local text = assert(H.read_file(trace))
				local fd = text:match("connect%((%d+), {sa_family=AF_INET, sin_port=htons%(" .. s.port .. "%)")
				assert.truthy(fd, "no connect() to the server in the trace")
				local writes, connected = 0, false
				for line in text:gmatch("[^\n]+") do
					if line:match("connect%(" .. fd .. ",") then
						connected = true
					elseif connected and line:match("^%d*%s*[a-z]+%(" .. fd .. ",") then
						writes = writes + 1
					end
				end
				-- the upgrade request, "start", the batch, the close (TLS: the
				-- handshake's writes too); one write per message would be 50+
				assert.is_true(writes <= (scheme == "wss" and 9 or 5), writes .. " writes on the socket")
				local want = { "start" }
				for i = 1, 50 do want[#want + 1] = "n" .. i end
				s:wait_event("close")
				assert.same(want, received(s))
			end)
		end
	end

	-- The link is reset while a callback runs; the batch never leaves (the
	-- engine reads on before it writes a batch and finds the reset, or the
	-- write fails: either way the link failed under it), and the messages
	-- go on the next connection, in order, with a log line that says so.  The proxy in
	-- between resets it from inside the callback, so the reset comes after
	-- the client has read the server's message and before the batch is
	-- written, however the machine schedules the two processes.
	for _, scheme in ipairs { "ws", "wss" } do
		it(scheme .. ": a batch whose link fails before it is written is sent on the next connection, in order", function()
			local s, px
			-- (one finally per test: busted keeps only the last one)
			finally(function() wsbeat.log(nil); H.stop(px, s) end)
			s = H.server { tls = scheme == "wss" }
			px = H.proxy(s.port)
			local lines = {}
			wsbeat.log(function(_, text) lines[#lines + 1] = text end, "info")
			-- (the client's end of its connection to the proxy, while it lasts)
			local established = ("ss -Htn state established '( dport = :%d )'"):format(px.port)
			local reset_done = false
			local ws, rec = H.client(("%s://127.0.0.1:%d/send/1/2?then=log"):format(scheme, px.port), {
				tls = tls_for(scheme), reconnect = { delay = 0.05, max_delay = 0.05 },
				heartbeat = false,
				on_message = function(w)
					if reset_done then return end -- (the next connection's message)
					-- reset the link (both sides, RST) while this callback runs, and
					-- wait until the client's socket has taken the RST
					px:mode("reset")
					local deadline = core.now() + 5 * H.SLOW
					while H.sh(established) ~= "" do
						assert(core.now() < deadline, "the client's socket outlived the reset")
						H.sleep(0.01)
					end
					reset_done = true
					for i = 1, 5 do assert(w:send("k" .. i)) end
				end,
			})
			H.run_until(function() return #received(s) >= 5 end, 10, "the five messages")
			ws:close()
			H.wait_state(ws, "closed")
			assert.is_true(reset_done)
			assert.same({ "open", "reconnecting", "connecting", "open", "closing", "closed" }, rec.states)
			local connects = s:events("connect")
			assert.equal(2, #connects)
			assert.same({}, received(s, connects[1].id))
			assert.same({ "k1", "k2", "k3", "k4", "k5" }, received(s, connects[2].id))
			local found
			for _, l in ipairs(lines) do
				if l:find("failed under 5 message(s) sent from callbacks", 1, true) then found = l end
			end
			assert.truthy(found, "no log line for the failed batch:\n" .. table.concat(lines, "\n"))
		end)
	end
end)
