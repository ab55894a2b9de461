local H = require "helper"
local wsbeat = require "wsbeat"

local MiB = 1024 * 1024

describe("big and fragmented messages", function()
	local srv, certs
	setup(function()
		certs = H.certs()
		srv = H.server { tls = true }
	end)
	teardown(function() H.stop(srv) end)

	it("echoes a 5 MiB binary message over wss (on_message)", function()
		local big = H.big_pattern(3, 5 * MiB)
		local ws, rec = H.client(srv:url(), {
			tls = { ca_file = certs .. "/ca.pem" },
			on_state = function(ws, st) if st == "open" then assert.is_true(ws:send(big, "binary")) end end,
		})
		H.run_until(function() return #rec.messages == 1 end, 20, "5 MiB echo")
		assert.equal(5 * MiB, #rec.messages[1].data)
		assert.is_true(rec.messages[1].data == big)
		assert.equal("binary", rec.messages[1].kind)
		local ev = srv:wait_event("message", function(e) return e.len == 5 * MiB end)
		assert.equal("binary", ev.kind)
		ws:close()
		H.wait_state(ws, "closed")
	end)

	for _, scheme in ipairs { "ws", "wss" } do
		it("keeps the order of small messages (written at once) and big ones (queued) over " .. scheme, function()
			-- small messages on an idle link leave straight from send();
			-- one behind a queued big message must wait its turn, and so
			-- must one sent while lws still holds unsent bytes
			local own = scheme == "ws" and H.server {} or nil
			finally(function() H.stop(own) end)
			local s = own or srv
			local plan = {}
			for i = 1, 60 do
				local n = (i % 7 == 0) and (200000 + i) or (i % 5 == 0) and (17000 + i) or (10 + i)
				plan[i] = ("%04d"):format(i) .. ("y"):rep(n - 4)
			end
			local ws, rec = H.client(s:url(), {
				tls = scheme == "wss" and { ca_file = certs .. "/ca.pem" } or nil,
				send_buffer = 8 * MiB,
			})
			H.wait_state(ws, "open")
			for i = 1, 30 do assert.is_true(ws:send(plan[i])) end -- outside step()
			for i = 31, 60 do
				assert.is_true(ws:send(plan[i]))
				if i % 3 == 0 then wsbeat.step() end
			end
			H.run_until(function() return #rec.messages == 60 end, 20, "60 echoes")
			for i = 1, 60 do
				assert.equal(#plan[i], #rec.messages[i].data, "length of echo " .. i)
				assert.equal(plan[i]:sub(1, 4), rec.messages[i].data:sub(1, 4), "echo " .. i .. " out of order")
			end
			ws:close()
			H.wait_state(ws, "closed")
		end)
	end

	for _, scheme in ipairs { "ws", "wss" } do
		it("frames every payload length form intact, written at once and queued, over " .. scheme, function()
			-- wsbeat frames and masks what it sends itself: lengths on both
			-- sides of the 7-bit / 16-bit / 64-bit forms, of the direct-write
			-- limit (16 KiB) and of the 64 KiB fragment, at every offset
			-- of the word-wise mask; the echo must come back byte for byte
			local own = scheme == "ws" and H.server {} or nil
			finally(function() H.stop(own) end)
			local s = own or srv
			local sizes = { 0, 1, 3, 4, 7, 8, 9, 15, 17, 125, 126, 127, 1000, 16383, 16384,
				16385, 65535, 65536, 65537, 65543, 131072, 131075, 200001 }
			local path = "/echo?frames-" .. scheme
			local ws, rec = H.client(s:url(path), {
				tls = scheme == "wss" and { ca_file = certs .. "/ca.pem" } or nil,
				send_buffer = 8 * MiB,
			})
			H.wait_state(ws, "open")
			local sent, text = {}, {}
			local alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
			for i, n in ipairs(sizes) do
				sent[i] = H.big_pattern(i * 37, n)
				text[i] = (alphabet:sub(i % 36 + 1) .. alphabet:rep(H.idiv(n, 36) + 1)):sub(1, n)
				-- one at a time: each goes out alone on an idle link (small
				-- ones straight from send(), big ones through the queue)
				assert.is_true(ws:send(sent[i], "binary"))
				H.run_until(function() return #rec.messages == i end, 10, "echo of " .. n .. " bytes")
			end
			-- and all at once, so most of them queue behind each other
			for i = 1, #sizes do
				if i % 2 == 0 then assert.is_true(ws:send(sent[i], "binary"))
				else assert.is_true(ws:send(text[i], "text")) end
			end
			H.run_until(function() return #rec.messages == 2 * #sizes end, 20, "second round of echoes")
			for i, n in ipairs(sizes) do
				for round = 0, 1 do
					local got = rec.messages[round * #sizes + i]
					local want = (round == 1 and i % 2 == 1) and text[i] or sent[i]
					assert.equal(n, #got.data, "length of echo " .. i)
					assert.is_true(got.data == want, "echo of " .. n .. " bytes differs")
				end
				assert.equal(i % 2 == 0 and "binary" or "text", rec.messages[#sizes + i].kind)
			end
			-- the server saw the same lengths, in order
			local lens = {}
			for _, e in ipairs(s:events("message")) do lens[#lens + 1] = e.len end
			for i, n in ipairs(sizes) do
				assert.equal(n, lens[#lens - 2 * #sizes + i])
				assert.equal(n, lens[#lens - #sizes + i])
			end
			assert.is_true(ws:ping("0123456789abc"))
			assert.is_truthy(s:wait_event("ping", function(e) return e.len == 13 end))
			ws:close()
			H.wait_state(ws, "closed")
			-- this connection's close (srv is shared: its first close is another test's)
			local id = s:wait_event("connect", function(e) return e.path == path end).id
			local ev = s:wait_event("close", function(e) return e.id == id end)
			assert.equal(1000, ev.code)
		end)
	end

	it("receives 4 x 5 MiB over wss with max_queue = 1 (flow control, receive()) #slow", function()
		local ws = wsbeat.connect(srv:url("/send/4/" .. 5 * MiB), {
			tls = { ca_file = certs .. "/ca.pem" }, max_queue = 1,
			heartbeat = { interval = 0.5, timeout = 1 },
		})
		for k = 0, 3 do
			local data, kind = ws:receive(20)
			assert.equal("binary", kind)
			assert.equal(5 * MiB, #data)
			assert.is_true(data == H.big_pattern(k, 5 * MiB), "message " .. k .. " differs")
			H.sleep(0.3) -- let the socket fill while the queue is full
		end
		assert.equal("open", ws:state())
		ws:close()
		assert.same({ nil, "closed" }, { ws:receive(5) })
	end)

	it("a message over max_message_size from a server that never reads fails the link at once, cause too_big", function()
		-- a ws:// client fails the connection (RFC 6455 7.1.7): its 1009,
		-- then TCP is closed, without waiting for an answer that this
		-- server never sends (close_timeout is far away)
		local core = require "wsbeat.core"
		local deaf = H.server { raw = "deaf-big" }
		finally(function() H.stop(deaf) end)
		local t_open
		local ws, rec = H.client(deaf:url("/"), { max_message_size = 1000, close_timeout = 30,
			reconnect = false, heartbeat = { interval = 0.2, timeout = 30 },
			on_state = function(_, st) if st == "open" then t_open = core.now() end end })
		H.wait_state(ws, "closed", 20)
		local took = core.now() - t_open
		local last = rec.infos[#rec.infos]
		assert.equal("too_big", last.cause)
		assert.equal(1009, last.code)
		assert.equal("incoming message too big (1009 message too big)", last.reason)
		assert.same({}, rec.messages)
		assert.is_true(took < 2 * H.SLOW, "closed after " .. took .. " s")
	end)

	it("closes with 1009 when a message exceeds max_message_size", function()
		local ws, rec = H.client(srv:url("/big/" .. 2 * MiB), {
			tls = { ca_file = certs .. "/ca.pem" }, max_message_size = MiB,
		})
		H.wait_state(ws, "closed", 10)
		local last = rec.infos[#rec.infos]
		assert.equal("too_big", last.cause)
		assert.equal(1009, last.code)
		assert.same({}, rec.messages)
		assert.equal(1009, srv:wait_event("close", function(e) return e.code == 1009 end).code)
	end)

	it("reassembles a fragmented text message", function()
		local plain = H.server {}
		finally(function() plain:stop() end)
		-- "Hel" (FIN=0, text) + "lo" (FIN=1, continuation)
		local ws, rec = H.client(plain:url("/raw/010348656c80026c6f"))
		H.run_until(function() return #rec.messages == 1 end, 5, "fragmented message")
		assert.same({ data = "Hello", kind = "text" }, rec.messages[1])
		ws:close()
		H.wait_state(ws, "closed")
	end)
end)

describe("compression", function()
	it("negotiates permessage-deflate and echoes 100 KB of text", function()
		local srv = H.server { deflate = true }
		finally(function() srv:stop() end)
		local text = ("wsbeat compresses well. "):rep(4200)
		local ws, rec = H.client(srv:url(), {
			compression = true,
			on_state = function(ws, st) if st == "open" then ws:send(text) end end,
		})
		H.run_until(function() return #rec.messages == 1 end, 10, "compressed echo")
		assert.is_true(rec.messages[1].data == text)
		assert.matches("permessage%-deflate", srv:wait_event("connect").extensions)
		ws:close()
		H.wait_state(ws, "closed")
		assert.equal(1000, srv:wait_event("close").code)
	end)

	it("is off by default", function()
		local srv = H.server { deflate = true }
		finally(function() srv:stop() end)
		local ws = H.client(srv:url())
		H.wait_state(ws, "open")
		assert.equal("", srv:wait_event("connect").extensions)
		ws:close()
		H.wait_state(ws, "closed")
	end)
end)

describe("compression with incompressible data", function()
	-- Regression for the Autobahn 12.2.x failures: deflated output larger
	-- than libwebsockets' 1 KiB tx buffer once corrupted frames.
	local function noise(n, seed)
		local t, x = {}, seed
		for i = 1, n do
			x = (x * 1103515245 + 12345) % 2147483648
			t[i] = string.char(math.floor(x / 65536) % 256)
		end
		return table.concat(t)
	end

	-- The same, fast enough for MiBs (and the same on every Lua: no 64-bit
	-- integers in LuaJIT): AES-128-CTR's key stream for the key `seed`
	local function big_noise(n, seed)
		local s = H.sh(("head -c %d /dev/zero | openssl enc -aes-128-ctr -nosalt -K %032x -iv 0"):format(n, seed))
		assert(#s == n, "openssl enc gave " .. #s .. " bytes")
		return s
	end

	-- Each server "message" event of one connection, as "kind len [data]".
	local function received(srv)
		local list = {}
		for _, e in ipairs(srv:events("message")) do
			list[#list + 1] = e.kind .. " " .. e.len .. (e.data and " " .. e.data or "")
		end
		return list
	end

	for _, tls in ipairs { false, true } do
		it("echoes 128 KiB and 256 KiB of random bytes intact over " .. (tls and "wss" or "ws"), function()
			local srv = H.server { deflate = true, tls = tls }
			finally(function() srv:stop() end)
			local a, b = noise(128 * 1024, 7), noise(256 * 1024, 11)
			local ws, rec = H.client(srv:url(), {
				compression = true,
				tls = tls and { ca_file = H.certs() .. "/ca.pem" } or nil,
				on_state = function(ws, st)
					if st == "open" then ws:send(a, "binary") ws:send(b, "binary") ws:send("tail") end
				end,
			})
			H.run_until(function() return #rec.messages == 3 end, 20, "3 compressed echoes")
			assert.is_true(rec.messages[1].data == a, "128 KiB echo differs")
			assert.is_true(rec.messages[2].data == b, "256 KiB echo differs")
			assert.equal("tail", rec.messages[3].data)
			assert.matches("permessage%-deflate", srv:wait_event("connect").extensions)
			ws:close()
			H.wait_state(ws, "closed")
		end)

		-- Once mistaken for lws no longer calling WRITEABLE after a big
		-- compressed message: it was the small send after it being refused
		-- by send_buffer (see docs/DESIGN.md, Sending). These pin both.
		it("sends 1 MiB and 4 MiB of random bytes, each followed by small messages, in order over " .. (tls and "wss" or "ws") .. " #slow", function()
			local srv = H.server { deflate = true, tls = tls }
			finally(function() srv:stop() end)
			local a, b = big_noise(MiB, 0x2545F491), big_noise(4 * MiB, 0x9E3779B9)
			local ws, rec = H.client(srv:url(), {
				compression = true, send_buffer = 8 * MiB,
				tls = tls and { ca_file = H.certs() .. "/ca.pem" } or nil,
				on_state = function(ws, st)
					if st == "open" then
						for _, m in ipairs { { a, "binary" }, { "after 1 MiB" }, { b, "binary" },
								     { "after 4 MiB" }, { "last" } } do
							assert.is_true(ws:send(m[1], m[2]))
						end
					end
				end,
			})
			H.run_until(function() return #rec.messages == 5 end, 30, "5 compressed echoes")
			assert.is_true(rec.messages[1].data == a, "1 MiB echo differs")
			assert.equal("after 1 MiB", rec.messages[2].data)
			assert.is_true(rec.messages[3].data == b, "4 MiB echo differs")
			assert.equal("after 4 MiB", rec.messages[4].data)
			assert.equal("last", rec.messages[5].data)
			assert.same({ "binary " .. MiB, "text 11 after 1 MiB", "binary " .. 4 * MiB,
				      "text 11 after 4 MiB", "text 4 last" }, received(srv))
			assert.matches("permessage%-deflate", srv:wait_event("connect").extensions)
			-- and the link still writes afterwards
			assert.is_true(ws:send("later"))
			H.run_until(function() return #rec.messages == 6 end, 10, "echo after the big ones")
			assert.equal("later", rec.messages[6].data)
			ws:close()
			H.wait_state(ws, "closed")
			assert.equal(1000, srv:wait_event("close").code)
		end)

		it("refuses a send behind a 1 MiB compressed message with the default send_buffer until it went out, over " .. (tls and "wss" or "ws"), function()
			local srv = H.server { deflate = true, tls = tls }
			finally(function() srv:stop() end)
			local a = big_noise(MiB, 0x2545F491)
			local refused
			local ws, rec = H.client(srv:url(), {
				compression = true,
				tls = tls and { ca_file = H.certs() .. "/ca.pem" } or nil,
				on_state = function(ws, st)
					if st == "open" then
						assert.is_true(ws:send(a, "binary")) -- alone, it may exceed send_buffer
						refused = { ws:send("tail") }
					end
				end,
			})
			H.run_until(function() return refused end, 10, "open")
			assert.same({ nil, "send buffer full" }, refused)
			H.run_until(function() return ws:send("tail") end, 20, "room in the send buffer")
			H.run_until(function() return #rec.messages == 2 end, 20, "2 compressed echoes")
			assert.is_true(rec.messages[1].data == a, "1 MiB echo differs")
			assert.equal("tail", rec.messages[2].data)
			assert.same({ "binary " .. MiB, "text 4 tail" }, received(srv))
			ws:close()
			H.wait_state(ws, "closed")
		end)
	end
end)

describe("compression and close", function()
	it("a close right after a big compressed message waits for it", function()
		local srv = H.server { deflate = true }
		finally(function() srv:stop() end)
		local big = ("0123456789abcdef"):rep(16384) .. string.rep("\255", 70000)
		local ws = H.client(srv:url(), {
			compression = true,
			on_state = function(ws, st) if st == "open" then ws:send(big, "binary") ws:close(4000, "after big") end end,
		})
		H.wait_state(ws, "closed", 10)
		local msg = srv:wait_event("message", function(e) return e.len == #big end)
		assert.equal("binary", msg.kind)
		assert.equal(4000, srv:wait_event("close", function(e) return e.code == 4000 end).code)
	end)
end)
