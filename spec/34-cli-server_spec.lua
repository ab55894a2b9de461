-- The wsbeat command as a server (bin/wsbeat --listen PORT), run as a
-- process against real clients: python websockets (spec/fixtures/client.py),
-- a raw socket that upgrades and then goes deaf, wsbeat's own client in this
-- process, and the command itself in client mode.  Every wait is for output
-- with a deadline; the port comes from the "listening" line.
local H = require "helper"
local json = require "dkjson"
local wsbeat = require "wsbeat"
local core = require "wsbeat.core"

local ROOT, q, read_file = H.ROOT, H.quote, H.read_file
-- the checkout's module, whatever else is installed
local ENV = "LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;'"

local function argstr(args)
	local t = {}
	for i, a in ipairs(args) do t[i] = q(a) end
	return table.concat(t, " ")
end

local function write_file(path, data)
	local f = assert(io.open(path, "wb"))
	f:write(data)
	f:close()
end

local seq = 0
local function tmp(name)
	seq = seq + 1
	return ("%s/cli-server-%d-%s"):format(H.tmpdir(), seq, name)
end

--- Serve this process's wsbeat clients (if any) until pred() is true;
-- fail with what(), which tells what the processes said, at the deadline.
local function wait_until(pred, timeout, what)
	local deadline = core.now() + (timeout or 5) * H.SLOW
	while true do
		local v = pred()
		if v then return v end
		if core.now() > deadline then error(what(), 2) end
		local t = wsbeat.timeout()
		if not t or t > 0.01 then t = 0.01 end
		core.wait(t)
		wsbeat.step()
	end
end

--- Run bin/wsbeat to its end with stdin from /dev/null: stdout, stderr,
-- exit code.
local function run(args)
	local out, err = tmp("out"), tmp("err")
	local _, _, code = H.execute(("cd %s && %s timeout 10 lua5.4 bin/wsbeat %s </dev/null >%s 2>%s"):format(
		q(ROOT), ENV, argstr(args), q(out), q(err)))
	return read_file(out), read_file(err), code
end

--- Start bin/wsbeat in the background. stdin: a FIFO that the test holds
-- open (p:write, p:eof), or /dev/null with opts.null.  Returns once it
-- listens: p.port, p.scheme.
local function start(args, opts)
	opts = opts or {}
	local p = { out = tmp("out"), err = tmp("err"), rc = tmp("rc"), pidf = tmp("pid") }
	local stdin = "/dev/null"
	if not opts.null then
		p.fifo = tmp("fifo")
		stdin = p.fifo
		assert(H.execute("mkfifo " .. q(p.fifo)))
	end
	local script = tmp("run.sh")
	write_file(script, ("cd %s\n%s lua5.4 bin/wsbeat %s <%s >%s 2>%s &\necho $! >%s\nwait $!\necho $? >%s\n")
		:format(q(ROOT), ENV, argstr(args), q(stdin), q(p.out), q(p.err), q(p.pidf), q(p.rc)))
	H.sh("sh " .. q(script) .. " </dev/null >/dev/null 2>&1 &")
	-- the FIFO's write end, opened after the start (the shell's open for
	-- reading waits for it) so that the command does not inherit it and
	-- sees the end of its input once p:eof() closes it; read-write: this
	-- open does not wait for the reader
	if p.fifo then p.w = assert(io.open(p.fifo, "r+")) end

	function p:stdout() return read_file(self.out) or "" end
	function p:stderr() return read_file(self.err) or "" end
	function p:exited() return (read_file(self.rc) or ""):match("%d+") end
	function p:write(s)
		self.w:write(s)
		self.w:flush()
	end
	function p:eof()
		if self.w then self.w:close() end
		self.w = nil
	end
	function p:signal(sig)
		assert(tostring(sig):match("^%w+$"), "bad signal")
		H.execute(("kill -%s %s 2>/dev/null"):format(sig, q(self.pid)))
	end
	--- Wait (serving this process's clients) until pred(self) is true.
	function p:wait_for(pred, timeout, what)
		return wait_until(function() return pred(self) end, timeout, function()
			return ("timed out waiting for %s\nstdout: %s\nstderr: %s"):format(what, self:stdout(), self:stderr())
		end)
	end
	--- Wait until the output (stdout or stderr) holds text; plain text.
	function p:wait_text(stream, text, timeout)
		return self:wait_for(function(s) return s[stream](s):find(text, 1, true) end, timeout, stream .. ": " .. text)
	end
	--- Wait until the output holds n matches of a pattern; the captures of the
	-- matches, in order.
	function p:wait_count(stream, pattern, n, timeout)
		local found
		self:wait_for(function(s)
			found = {}
			for a in s[stream](s):gmatch(pattern) do found[#found + 1] = a end
			return #found >= n
		end, timeout, ("%d x %s"):format(n, pattern))
		return found
	end
	--- Exit code, once the process has ended.
	function p:wait_exit(timeout)
		self:wait_for(function(s) return s:exited() end, timeout, "exit")
		return tonumber(self:exited())
	end
	function p:stop()
		self:eof()
		if self.pid and not self:exited() then self:signal("KILL") end
	end

	local ok, err = pcall(function()
		p:wait_for(function(s)
			s.pid = s.pid or (read_file(s.pidf) or ""):match("%d+")
			return s.pid
		end, 5, "the process to start")
		if opts.listening == false then return end
		local ev = opts.json and "\"url\":\"(wss?)://127%.0%.0%.1:(%d+)\"" or "%* listening on (wss?)://127%.0%.0%.1:(%d+)\n"
		p:wait_for(function(s)
			local scheme, port = s[opts.json and "stdout" or "stderr"](s):match(ev)
			p.scheme, p.port = scheme, tonumber(port)
			return port or s:exited()
		end, 10, "listening")
		assert(p.port, "it ended: " .. p:stderr())
	end)
	if not ok then
		p:stop()
		error(err, 2)
	end
	function p:url(path) return ("%s://127.0.0.1:%d%s"):format(self.scheme, self.port, path or "/") end
	return p
end

--- A python websockets client (spec/fixtures/client.py) running script;
-- :wait_done() -> its JSON events once it printed DONE.
local function py(url, script, ...)
	local peer = H.start_peer({ H.PYTHON, ROOT .. "/spec/fixtures/client.py", url, json.encode(script), ... },
		{ name = "client", ready = "^START" })
	function peer:wait_done(timeout)
		wait_until(function() return (read_file(self.log) or ""):find("\nDONE") end, timeout or 10, function()
			return "the python client did not finish: " .. (read_file(self.log) or "")
				.. (read_file(self.log .. ".err") or "")
		end)
		return self:events()
	end
	--- Wait until it logged an event of this kind.
	function peer:wait_kind(kind, timeout)
		return wait_until(function() return self:events(kind)[1] end, timeout or 10, function()
			return "no " .. kind .. " event from the python client: " .. (read_file(self.log) or "")
				.. (read_file(self.log .. ".err") or "")
		end)
	end
	return peer
end

-- A client that upgrades with a raw socket (spec/fixtures/rawclient.py)
-- and then never reads or writes again: it answers neither PINGs nor the
-- close.  Ready once it has read the 101.
local function deaf_client(port)
	local script = json.encode { { upgrade = "/deaf" }, { sleep = 60 } }
	return H.start_peer({ H.PYTHON, H.ROOT .. "/spec/fixtures/rawclient.py", tostring(port), script },
		{ name = "deaf", ready = '"status": 101' })
end

--- A wsbeat client in this process; rec.messages, rec.infos (H.client).
local function client(url, opts)
	opts = opts or {}
	opts.reconnect, opts.heartbeat = false, false
	local ws, rec = H.client(url, opts)
	wait_until(function() return ws:state() == "open" or ws:state() == "closed" end, 5,
		function() return "client state " .. ws:state() end)
	assert.equal("open", ws:state())
	return ws, rec
end

local function texts(rec)
	local r = {}
	for _, m in ipairs(rec.messages) do r[#r + 1] = m.data end
	return r
end

local function events(out)
	local list = {}
	for line in out:gmatch("[^\n]+") do
		local ev, _, err = json.decode(line)
		assert(ev, ("not JSON (%s): %s"):format(tostring(err), line))
		list[#list + 1] = ev
	end
	return list
end

local function of(list, kind)
	local r = {}
	for _, e in ipairs(list) do if e.event == kind then r[#r + 1] = e end end
	return r
end

describe("wsbeat --listen #server", function()
	describe("usage", function()
		it("rejects misuse with a usage message on stderr and exit 2, naming the option", function()
			local cases = {
				{ { "--listen", "0", "ws://127.0.0.1:1/" }, "--listen takes no URL, got 'ws://127.0.0.1:1/'" },
				{ { "--listen", "0", "-H", "X-A: b" }, "-H is a client option (not with --listen)" },
				{ { "--listen", "0", "--reconnect" }, "--reconnect is a client option (not with --listen)" },
				{ { "--proxy", "http://127.0.0.1:1", "--listen", "0" }, "--proxy is a client option" },
				{ { "--listen", "0", "--origin", "https://o.example" }, "--origin is a client option" },
				{ { "--listen", "0", "--max-attempts", "3" }, "--max-attempts is a client option" },
				{ { "-l", "0", "-qk" }, "-k is a client option" },
				{ { "--listen=0", "--wait", "1" }, "--wait is a client option" },
				{ { "--listen", "http" }, "--listen: expected a port number from 0 to 65535 (0: a free port), got 'http'" },
				{ { "--listen", "65536" }, "--listen: expected a port number from 0 to 65535" },
				{ { "--listen", "-1" }, "--listen: expected a port number from 0 to 65535" },
				{ { "--listen" }, "--listen needs a value" },
				{ { "--echo", "ws://127.0.0.1:1/" }, "--echo needs --listen" },
				{ { "--host", "::", "ws://127.0.0.1:1/" }, "--host needs --listen" },
				{ { "--listen", "0", "--key", "k.pem" }, "--key needs --cert" },
				{ { "--listen", "0", "--cert", "c.pem" }, "--cert needs --key" },
				{ { "--listen", "0", "--ca", "ca.pem" }, "--ca (client certificates) needs wss: add --cert and --key" },
				{ { "--listen", "0", "-s", "bad name" }, "protocols: entry 1 is not a valid subprotocol name" },
				{ { "--listen", "0", "--host", "a b" }, "host: expected an address or a host name" },
				{ { "--listen", "0", "--no-heartbeat", "--heartbeat-message", "x" },
					"--heartbeat-message needs a heartbeat" },
			}
			for _, c in ipairs(cases) do
				local out, err, code = run(c[1])
				local what = table.concat(c[1], " ") .. "\n" .. err
				assert.equal(2, code, what)
				assert.equal("", out, what)
				assert.matches("wsbeat: " .. c[2], err, 1, true)
				assert.matches("Usage: wsbeat [options] URL\n       wsbeat --listen PORT [options]\n", err, 1, true)
			end
		end)

		it("describes server mode in --help", function()
			local out, err, code = run { "--help" }
			assert.equal(0, code)
			assert.equal("", err)
			assert.matches("^Usage: wsbeat %[options%] URL\n       wsbeat %-%-listen PORT %[options%]\n", out)
			for _, s in ipairs { "Server mode:", "-l, --listen PORT", "--host ADDR", "--echo", "--ca FILE" } do
				assert.matches(s, out, 1, true)
			end
		end)
	end)

	it("--echo sends every message back to a python client and prints it; SIGTERM ends with 0", function()
		local p = start { "--listen", "0", "--echo" }
		finally(function() p:stop() end)
		assert.equal("ws", p.scheme)
		local ev = py(p:url("/e"), {
			{ send = "hello" }, { recv = 1 }, { send_hex = "00ff10" }, { recv = 1 }, { close = 1000 },
		}):wait_done()
		local m = of(ev, "message")
		assert.equal("hello", m[1].text)
		assert.equal("00ff10", m[2].hex)
		assert.equal(1000, of(ev, "closed")[1].code)
		local port = p:wait_count("stderr", "\n%* 127%.0%.0%.1:(%d+) closed %(closed_by_peer: client closed %(1000", 1)[1]
		assert.matches("\n* 127.0.0.1:" .. port .. " open\n", p:stderr(), 1, true)
		assert.equal("hello\n00ff10\n", p:stdout())
		p:signal("TERM")
		assert.equal(0, p:wait_exit())
	end)

	it("--compression: a client's permessage-deflate offer is agreed, echoes intact", function()
		local p = start { "--listen", "0", "--echo", "--compression" }
		finally(function() p:stop() end)
		local text = ("squeeze "):rep(500)
		local ev = py(p:url("/z"), { { send = text }, { recv = 1 }, { close = 1000 } }, "--compression"):wait_done()
		assert.same({ "permessage-deflate" }, of(ev, "open")[1].extensions)
		assert.equal(#text, of(ev, "message")[1].len)
		assert.equal(1000, of(ev, "closed")[1].code)
		p:wait_count("stdout", "squeeze \n", 1)
		assert.equal(text .. "\n", p:stdout())
		p:signal("TERM")
		assert.equal(0, p:wait_exit())
	end)

	it("sends each line of stdin to every open client (waiting for the first), prints what clients send, "
		.. "serves on after the end of stdin", function()
		local p = start { "--listen", "0" }
		finally(function() p:stop() end)
		p:write("early\n")
		local a, ra = client(p:url("/a"))
		wait_until(function() return ra.messages[1] end, 5, function() return "no early line: " .. p:stderr() end)
		assert.same({ "early" }, texts(ra))
		local b, rb = client(p:url("/b"))
		p:wait_count("stderr", "\n%* 127%.0%.0%.1:%d+ open", 2)
		p:write("to all\ncrlf\r\n")
		wait_until(function() return #ra.messages == 3 and #rb.messages == 2 end, 5,
			function() return "broadcast: " .. json.encode { texts(ra), texts(rb) } end)
		assert.same({ "early", "to all", "crlf" }, texts(ra))
		assert.same({ "to all", "crlf" }, texts(rb))
		-- a line that is not UTF-8 is skipped with a warning
		p:write("\255bad\nok\n")
		wait_until(function() return #rb.messages == 3 end, 5, function() return "ok line: " .. p:stderr() end)
		assert.same({ "to all", "crlf", "ok" }, texts(rb))
		assert.matches("\nwsbeat: line 4 not sent: invalid UTF-8 (use --binary)\n", p:stderr(), 1, true)
		-- what the clients send, on stdout; binary as hex
		a:send("from a")
		p:wait_text("stdout", "from a\n")
		b:send("\0\1", "binary")
		p:wait_text("stdout", "from a\n0001\n")
		-- the end of stdin does not stop the server; a last line without
		-- its newline is sent
		p:write("last")
		p:eof()
		wait_until(function() return #rb.messages == 4 end, 5, function() return "last line: " .. p:stderr() end)
		assert.equal("last", rb.messages[4].data)
		local c = client(p:url("/c"))
		c:send("after eof")
		p:wait_text("stdout", "after eof\n")
		assert.is_nil(p:exited())
		-- SIGINT: every client sees 1001
		p:signal("INT")
		assert.equal(0, p:wait_exit())
		for _, ws in ipairs { a, b, c } do
			H.wait_state(ws, "closed")
		end
		assert.same({ "closed_by_peer", 1001 }, { ra.infos[#ra.infos].cause, ra.infos[#ra.infos].code })
		assert.same({ "closed_by_peer", 1001 }, { rb.infos[#rb.infos].cause, rb.infos[#rb.infos].code })
		assert.matches("* stopping (SIGINT): closing 3 connections with 1001\n", p:stderr(), 1, true)
		assert.equal(3, select(2, p:stderr():gsub("closed %(server_closed: server closed%)", "")))
	end)

	it("--json: listening, open, message, rtt and closed events with the client's address and port", function()
		local p = start({ "--listen", "0", "--json", "--heartbeat", "0.05", "-s", "chat" }, { json = true })
		finally(function() p:stop() end)
		local ev = py(p:url("/j?x=1"), {
			{ send = "hi" }, { send_hex = "0001ff" }, { sleep = 0.3 }, { close = 4001 },
		}, "--protocols", "chat"):wait_done()
		assert.equal("chat", of(ev, "open")[1].subprotocol)
		p:wait_text("stdout", '"event":"closed"')
		local evs = events(p:stdout())
		assert.same({ event = "listening", url = "ws://127.0.0.1:" .. p.port, host = "127.0.0.1", port = p.port }, evs[1])
		local open = evs[2]
		assert.is_number(open.remote_port)
		assert.same({ event = "open", remote = "127.0.0.1", remote_port = open.remote_port, path = "/j", query = "x=1",
			protocol = "chat" }, open)
		local from = { remote = "127.0.0.1", remote_port = open.remote_port }
		local msgs = of(evs, "message")
		assert.same({
			{ event = "message", kind = "text", data = "hi", remote = from.remote, remote_port = from.remote_port },
			{ event = "message", kind = "binary", data = "AAH/", remote = from.remote, remote_port = from.remote_port },
		}, msgs)
		local rtt = of(evs, "rtt")[1]
		assert.is_table(rtt, p:stdout())
		assert.same(from, { remote = rtt.remote, remote_port = rtt.remote_port })
		assert.is_true(rtt.rtt > 0 and rtt.rtt < 0.5)
		local closed = evs[#evs]
		assert.same({ "closed", "127.0.0.1", open.remote_port, "closed_by_peer", 4001, 0 },
			{ closed.event, closed.remote, closed.remote_port, closed.cause, closed.code, closed.unsent })
		assert.matches("bye", closed.reason, 1, true)
		-- no * lines with --json
		assert.equal("", p:stderr())
		p:signal("TERM")
		assert.equal(0, p:wait_exit())
	end)

	it("SIGTERM closes every client with 1001 as the clients see it and exits 0 (stdin: /dev/null)", function()
		local p = start({ "--listen", "0" }, { null = true })
		local c1, c2
		finally(function() H.stop(c1, c2); p:stop() end)
		c1 = py(p:url("/1"), { { wait_close = 20 } })
		c2 = py(p:url("/2"), { { wait_close = 20 } })
		c1:wait_kind("open")
		c2:wait_kind("open")
		p:wait_count("stderr", "\n%* 127%.0%.0%.1:%d+ open", 2)
		local t0 = core.now()
		p:signal("TERM")
		assert.equal(0, p:wait_exit())
		assert.is_true(core.now() - t0 < 3 * H.SLOW)
		for _, c in ipairs { c1, c2 } do
			local closed = c:wait_done()
			assert.equal(1001, of(closed, "closed")[1].code)
		end
		assert.matches("* stopping (SIGTERM): closing 2 connections with 1001\n", p:stderr(), 1, true)
		assert.equal(2, select(2, p:stderr():gsub("closed %(server_closed: server closed%)", "")))
	end)

	it("a second signal during the close exits at once with 128 + its number", function()
		local p = start { "--listen", "0", "--no-heartbeat", "--close-timeout", "30" }
		local deaf
		finally(function() H.stop(deaf); p:stop() end)
		deaf = deaf_client(p.port)
		p:wait_count("stderr", "\n%* 127%.0%.0%.1:%d+ open", 1)
		p:signal("INT")
		p:wait_text("stderr", "* stopping (SIGINT): closing 1 connection with 1001\n")
		local t0 = core.now()
		p:signal("HUP")
		assert.equal(128 + 1, p:wait_exit())
		assert.is_true(core.now() - t0 < 3 * H.SLOW)
	end)

	it("closes a client that stops answering with heartbeat_timeout", function()
		local p = start { "--listen", "0", "--heartbeat", "0.1,0.2" }
		local deaf
		finally(function() H.stop(deaf); p:stop() end)
		deaf = deaf_client(p.port)
		p:wait_text("stderr", " closed (heartbeat_timeout: heartbeat timeout")
		p:signal("TERM")
		assert.equal(0, p:wait_exit())
	end)

	it("talks to the command in client mode, with a subprotocol", function()
		local p = start { "--listen", "0", "--echo", "-s", "v2", "-s", "v1" }
		finally(function() p:stop() end)
		local out, err = tmp("out"), tmp("err")
		local _, _, code = H.execute(("cd %s && printf 'a\\nb\\n' | %s timeout 10 lua5.4 bin/wsbeat -q -s v1 -s v2 %s >%s 2>%s")
			:format(q(ROOT), ENV, q(p:url("/")), q(out), q(err)))
		assert.equal(0, code, read_file(err))
		assert.equal("a\nb\n", read_file(out))
		assert.equal("", read_file(err))
		p:wait_text("stderr", " closed (closed_by_peer: client closed (1000")
		assert.matches("\n%* 127%.0%.0%.1:%d+ open %(subprotocol v2%)\n", p:stderr())
		assert.equal("a\nb\n", p:stdout())
		p:signal("TERM")
		assert.equal(0, p:wait_exit())
	end)

	it("exits 1 with the reason when the port cannot be bound", function()
		local other = assert(wsbeat.listen { port = 0 })
		finally(function() other:close() end)
		local out, err, code = run { "--listen", tostring(other:port()) }
		assert.equal(1, code)
		assert.equal("", out)
		assert.equal(("wsbeat: cannot listen on 127.0.0.1 port %d: Address already in use\n"):format(other:port()), err)
		out, err, code = run { "--listen", "0", "--cert", "/nonexistent/c.pem", "--key", "/nonexistent/k.pem" }
		assert.equal(1, code)
		assert.equal("", out)
		assert.equal("wsbeat: cannot listen: --cert: cannot read '/nonexistent/c.pem'\n", err)
	end)

	describe("over TLS", function()
		local certs
		setup(function() certs = H.certs() end)

		it("serves wss:// with --cert and --key", function()
			local p = start { "--listen", "0", "--echo", "--cert", certs .. "/server.pem", "--key", certs .. "/server.key" }
			finally(function() p:stop() end)
			assert.equal("wss", p.scheme)
			local ev = py(p:url("/tls"), { { send = "secure" }, { recv = 1 }, { close = 1000 } },
				"--ca", certs .. "/ca.pem"):wait_done()
			assert.equal("secure", of(ev, "message")[1].text)
			p:signal("TERM")
			assert.equal(0, p:wait_exit())
		end)

		it("requires client certificates signed by --ca", function()
			local p = start { "--listen", "0", "--echo", "--cert", certs .. "/server.pem", "--key",
				certs .. "/server.key", "--ca", certs .. "/ca.pem" }
			finally(function() p:stop() end)
			local ev = py(p:url("/mtls"), { { send = "me" }, { recv = 1 }, { close = 1000 } }, "--ca", certs .. "/ca.pem",
				"--cert", certs .. "/client.pem", "--key", certs .. "/client.key"):wait_done()
			assert.equal("me", of(ev, "message")[1].text)
			ev = py(p:url("/nocert"), { { send = "anon" }, { recv = 1 } }, "--ca", certs .. "/ca.pem"):wait_done()
			assert.is_nil(of(ev, "message")[1])
			assert.is_table(of(ev, "error")[1], json.encode(ev))
			assert.equal("me\n", p:stdout())
			p:signal("TERM")
			assert.equal(0, p:wait_exit())
		end)
	end)
end)
