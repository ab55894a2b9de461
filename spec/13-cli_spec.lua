-- The wsbeat command (bin/wsbeat), driven through pipes and FIFOs against
-- real peers on loopback.
local H = require "helper"
local json = require "dkjson"
local core = require "wsbeat.core"

local ROOT = H.ROOT
-- the checkout's module, whatever else is installed
local ENV = "LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;'"

local q = H.quote

local function argstr(args)
	local t = {}
	for i, a in ipairs(args) do t[i] = q(a) end
	return table.concat(t, " ")
end

local read_file = H.read_file

local function write_file(path, data)
	local f = assert(io.open(path, "wb"))
	f:write(data)
	f:close()
end

local seq = 0
local function tmp(name)
	seq = seq + 1
	return ("%s/cli-%d-%s"):format(H.tmpdir(), seq, name)
end

--- Run bin/wsbeat to its end. opts.input: bytes piped to stdin (through
-- cat, so stdin is a pipe); opts.redirect: a shell redirection for stdin
-- instead (its file name quoted); opts.env: more environment assignments
-- (values quoted). Returns stdout, stderr,
-- exit code, seconds taken.
local function wsbeat(args, opts)
	opts = opts or {}
	local out, err = tmp("out"), tmp("err")
	local prefix, redirect = "", opts.redirect or ""
	if opts.input then
		local input = tmp("in")
		write_file(input, opts.input)
		prefix = "cat " .. q(input) .. " | "
	end
	local cmd = ("cd %s && %s%s %s timeout 10 lua5.4 bin/wsbeat %s %s >%s 2>%s"):format(
		q(ROOT), prefix, ENV, opts.env or "", argstr(args), redirect, q(out), q(err))
	local t0 = core.now()
	local _, _, code = H.execute(cmd)
	return read_file(out), read_file(err), code, core.now() - t0
end

--- Start bin/wsbeat in the background with stdin on a FIFO that the test
-- holds open (so stdin never ends until :eof()); env: more environment
-- assignments.
local function start(args, env)
	local p = { fifo = tmp("fifo"), out = tmp("out"), err = tmp("err"), rc = tmp("rc"), pidf = tmp("pid") }
	assert(H.execute("mkfifo " .. q(p.fifo)))
	p.w = assert(io.open(p.fifo, "r+")) -- read-write: opening does not wait for a reader
	local script = tmp("run.sh")
	write_file(script, ("cd %s\n%s %s lua5.4 bin/wsbeat %s <%s >%s 2>%s &\necho $! >%s\nwait $!\necho $? >%s\n")
		:format(q(ROOT), ENV, env or "", argstr(args), q(p.fifo), q(p.out), q(p.err), q(p.pidf), q(p.rc)))
	H.sh("sh " .. q(script) .. " </dev/null >/dev/null 2>&1 &")
	local deadline = core.now() + 5
	while not p.pid do
		p.pid = (read_file(p.pidf) or ""):match("%d+")
		assert(core.now() < deadline, "wsbeat did not start")
		if not p.pid then H.sleep(0.01) end
	end

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
	function p:stdout() return read_file(self.out) or "" end
	function p:stderr() return read_file(self.err) or "" end
	--- Wait until pred(self) is true; fail with what the process said.
	function p:wait_for(pred, timeout, what)
		local limit = core.now() + (timeout or 5)
		while not pred(self) do
			if core.now() > limit then
				error(("timed out waiting for %s\nstdout: %s\nstderr: %s"):format(
					what, self:stdout(), self:stderr()), 2)
			end
			H.sleep(0.01)
		end
	end
	--- Exit code, once the process has ended.
	function p:wait_exit(timeout)
		self:wait_for(function(s) return (read_file(s.rc) or ""):match("%d+") end, timeout, "exit")
		return tonumber(read_file(self.rc):match("%d+"))
	end
	function p:stop()
		self:eof()
		if not (read_file(self.rc) or ""):match("%d") then self:signal("KILL") end
	end
	return p
end

-- An environment in which no cqueues module can be loaded: every require
-- of one raises (LUA_INIT runs before the script).
local NO_CQUEUES = "LUA_INIT_5_4=" .. q('for _, m in ipairs { "cqueues", "cqueues.socket", "cqueues.signal", '
	.. '"cqueues.errno", "cqueues.thread", "_cqueues" } do '
	.. 'package.preload[m] = function() error("cqueues is not loadable here", 2) end end')

-- Drives a command on a pseudo-terminal: argv[1] is a shell command, then
-- steps "send:TEXT" (written to the terminal), "wait:TEXT" (until the
-- output since the last mark holds TEXT), "mark"; TEXT takes \n and \x04
-- escapes.  Then reads to the end and prints the output and "STATUS n".
local PTY_DRIVER = [==[
import os, pty, select, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv("/bin/sh", ["sh", "-c", sys.argv[1]])
out, mark = b"", 0
def more(deadline):
    global out
    left = deadline - time.monotonic()
    if left <= 0:
        return False
    if select.select([fd], [], [], left)[0]:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            return False
        out += data
    return True
def fail(what):
    sys.stdout.write(out.decode("utf-8", "replace"))
    print("FAILED " + what)
    os.kill(pid, 9)
    sys.exit(1)
for step in sys.argv[2:]:
    kind, _, arg = step.partition(":")
    arg = arg.encode().decode("unicode_escape").encode("latin-1")
    if kind == "send":
        os.write(fd, arg)
    elif kind == "mark":
        mark = len(out)
    else:
        deadline = time.monotonic() + 10
        while arg not in out[mark:]:
            if not more(deadline):
                fail("waiting for %r" % arg)
deadline = time.monotonic() + 10
while more(deadline):
    pass
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
print("STATUS %d" % os.waitstatus_to_exitcode(status))
]==]

--- The JSON lines of --json output, decoded.
local function events(out)
	local list = {}
	for line in out:gmatch("[^\n]+") do
		local ev, _, err = json.decode(line)
		assert(ev, ("not JSON (%s): %s"):format(tostring(err), line))
		list[#list + 1] = ev
	end
	return list
end

local function pick(list, pred)
	local r = {}
	for _, ev in ipairs(list) do
		if pred(ev) then r[#r + 1] = ev end
	end
	return r
end

local function states(list)
	local r = {}
	for _, ev in ipairs(pick(list, function(e) return e.event == "state" end)) do r[#r + 1] = ev.state end
	return r
end

--- The server's view of the one connection whose path is `path`.
local function server_conn(srv, path)
	local conn = srv:wait_event("connect", function(e) return e.path == path end)
	local c = { id = conn.id, connect = conn }
	function c.messages()
		return pick(srv:events("message"), function(e) return e.id == conn.id end)
	end
	function c.close()
		return srv:wait_event("close", function(e) return e.id == conn.id end)
	end
	return c
end

describe("wsbeat command", function()
	describe("usage", function()
		it("prints the version and the help, exit 0", function()
			local out, err, code = wsbeat({ "--version" })
			assert.equal(0, code)
			assert.equal("wsbeat 0.1.0\n", out)
			assert.equal("", err)
			out, err, code = wsbeat({ "-h" })
			assert.equal(0, code)
			assert.equal("", err)
			assert.matches("^Usage: wsbeat %[options%] URL\n", out)
			for _, flag in ipairs { "--heartbeat INTERVAL[,TIMEOUT]", "--no-heartbeat", "--heartbeat-message",
				"--reconnect", "--no-reconnect", "--max-attempts", "--retry-delay", "--header", "--subprotocol",
				"--origin", "--ca", "--capath", "--cert", "--key", "--server-name", "--insecure",
				"--connect-timeout", "--close-timeout", "--compression", "--binary", "--binary-format",
				"--wait", "--no-stdin", "--json", "--quiet", "--help", "--version" } do
				assert.matches(flag, out, 1, true)
			end
		end)

		it("finds the module from the checkout when run from elsewhere", function()
			local abs = H.sh("cd " .. q(ROOT) .. " && pwd"):gsub("%s+$", "")
			local out = H.sh(("cd /tmp && lua5.4 %s --version 2>&1"):format(q(abs .. "/bin/wsbeat")))
			assert.equal("wsbeat 0.1.0\n", out)
		end)

		it("rejects misuse with a usage message on stderr and exit 2", function()
			local cases = {
				{ {}, "missing URL" },
				{ { "--bogus", "ws://127.0.0.1:1/" }, "unknown option '--bogus'" },
				{ { "-Z", "ws://127.0.0.1:1/" }, "unknown option '-Z'" },
				{ { "ws://127.0.0.1:1/", "extra" }, "one URL expected" },
				{ { "http://127.0.0.1:1/" }, "invalid URL: unsupported scheme 'http'" },
				{ { "127.0.0.1:1" }, "invalid URL: expected ws://host[:port][/path]\n" },
				{ { "--heartbeat", "0,1", "ws://127.0.0.1:1/" }, "--heartbeat: expected a number of seconds > 0, got '0'" },
				{ { "--heartbeat" }, "--heartbeat needs a value" },
				{ { "--max-attempts", "1.5", "ws://127.0.0.1:1/" }, "--max-attempts: expected a positive integer" },
				{ { "--no-reconnect", "--max-attempts", "3", "ws://127.0.0.1:1/" }, "--max-attempts needs reconnecting" },
				{ { "-H", "no colon", "ws://127.0.0.1:1/" }, "-H: expected 'Name: value'" },
				{ { "--header=Origin: x", "ws://127.0.0.1:1/" }, "--header: use --origin" },
				{ { "--key", "k.pem", "wss://127.0.0.1:1/" }, "--key needs --cert" },
				{ { "-s", "bad name", "ws://127.0.0.1:1/" }, "protocols: entry 1 is not a valid subprotocol name" },
				{ { "--binary-format", "octal", "ws://127.0.0.1:1/" }, "--binary-format: expected hex, base64 or raw" },
				{ { "--no-stdin=yes", "ws://127.0.0.1:1/" }, "--no-stdin does not take a value" },
			}
			for _, c in ipairs(cases) do
				local out, err, code = wsbeat(c[1], { redirect = "</dev/null" })
				assert.equal(2, code, table.concat(c[1], " "))
				assert.equal("", out)
				assert.matches("wsbeat: " .. c[2], err, 1, true)
				assert.matches("Usage: wsbeat [options] URL", err, 1, true)
				assert.not_matches("invalid URL: invalid URL", err, 1, true)
			end
		end)
	end)

	describe("against a python peer", function()
		local srv
		setup(function() srv = H.server {} end)
		teardown(function() H.stop(srv) end)

		it("sends stdin lines, prints the echoes in order, closes with 1000 at EOF, exit 0", function()
			local out, err, code, took = wsbeat({ srv:url("/echo?t=plain") },
				{ input = "one\ntwo\n\nthree\r\nlast, no newline" })
			assert.equal(0, code)
			assert.equal("one\ntwo\n\nthree\nlast, no newline\n", out)
			assert.matches("* connecting (ws://127.0.0.1:" .. srv.port .. "/echo?t=plain)\n* open\n", err, 1, true)
			assert.matches("* closing (closed_by_user: closed by user)\n* closed (closed_by_user: closed by user)\n",
				err, 1, true)
			assert.is_true(took < 2.5)
			local conn = server_conn(srv, "/echo?t=plain")
			assert.equal(1000, conn.close().code)
			local got = {}
			for _, m in ipairs(conn.messages()) do got[#got + 1] = m.data end
			assert.same({ "one", "two", "", "three", "last, no newline" }, got)
		end)

		it("--json: one event per line, state changes with causes, messages, exit 0", function()
			local out, err, code = wsbeat({ "--json", srv:url("/echo?t=json") },
				{ input = 'a\n\tquote " back \\ \1 ctl é\n' })
			assert.equal(0, code)
			assert.equal("", err)
			local evs = events(out)
			assert.same({ "open", "closing", "closed" }, states(evs))
			assert.same({ event = "state", state = "open", previous = "connecting", cause = "connected",
				reason = "connected", attempt = 0 }, evs[1])
			assert.same({ event = "message", kind = "text", data = "a" }, evs[2])
			assert.same({ event = "message", kind = "text", data = '\tquote " back \\ \1 ctl é' }, evs[3])
			assert.same({ event = "state", state = "closing", previous = "open", cause = "closed_by_user",
				reason = "closed by user", code = 1000, attempt = 0 }, evs[4])
			assert.same({ event = "state", state = "closed", previous = "closing", cause = "closed_by_user",
				reason = "closed by user", code = 1000, attempt = 0, unsent = 0 }, evs[5])
			assert.equal(5, #evs)
			-- raw control bytes never reach the output: JSON escapes them
			assert.not_matches("[%z\1-\31]", (out:gsub("\n", "")))
			assert.equal(1000, server_conn(srv, "/echo?t=json").close().code)
		end)

		it("skips a line that is not UTF-8 in text mode and sends the rest", function()
			local out, err, code = wsbeat({ "-q", srv:url("/echo?t=utf8") }, { input = "ok\n\255bad\nstill ok\n" })
			assert.equal(0, code)
			assert.equal("ok\nstill ok\n", out)
			assert.equal("wsbeat: line 2 not sent: invalid UTF-8 (use --binary)\n", err)
		end)

		it("--binary sends lines as binary, printed as hex by default", function()
			local out, err, code = wsbeat({ "-q", "--binary", srv:url("/echo?t=bin") }, { input = "\0\1\255\n\r\n" })
			assert.equal(0, code)
			assert.equal("", err)
			assert.equal("0001ff\n0d\n", out) -- binary lines keep a CR
			local msgs = server_conn(srv, "/echo?t=bin").messages()
			assert.equal(2, #msgs)
			assert.equal("binary", msgs[1].kind)
			assert.equal(3, msgs[1].len)
			assert.equal(1, msgs[2].len)
		end)

		it("prints binary messages as base64, raw, or base64 in --json #slow", function()
			local input = "\0\1\255\n\r\n"
			local out = wsbeat({ "-q", "--binary", "--binary-format", "base64", srv:url("/echo?t=b64") }, { input = input })
			assert.equal("AAH/\nDQ==\n", out)
			out = wsbeat({ "-q", "--binary", "--binary-format=raw", srv:url("/echo?t=raw") }, { input = input })
			assert.equal("\0\1\255\n\r\n", out)
			out = wsbeat({ "--json", "--binary", srv:url("/echo?t=jsonbin") }, { input = input })
			local msg = pick(events(out), function(e) return e.event == "message" end)
			assert.same({ { event = "message", kind = "binary", data = "AAH/" },
				{ event = "message", kind = "binary", data = "DQ==" } }, msg)
		end)

		it("sends -H headers, --origin and -s subprotocols #slow", function()
			local out, _, code = wsbeat({ "--json", "-H", "X-Token: abc", "-H", "x-token: def", "-HX-Other:1",
				"--origin", "https://o.example", "-s", "nope", "--subprotocol", "superchat", srv:url("/headers") },
				{ input = "" })
			assert.equal(0, code)
			local evs = events(out)
			assert.equal("superchat", evs[1].protocol)
			local headers = json.decode(evs[2].data)
			assert.equal("abc, def", headers["x-token"])
			assert.equal("1", headers["x-other"])
			assert.equal("https://o.example", headers.origin)
			assert.equal("nope, superchat", headers["sec-websocket-protocol"])
			local conn = server_conn(srv, "/headers")
			assert.equal("superchat", conn.connect.subprotocol)
			-- and in words on stderr
			local _, err = wsbeat({ "-s", "chat", srv:url("/echo?t=proto") }, { input = "" })
			assert.matches("* open (subprotocol chat)\n", err, 1, true)
		end)

		it("reads a regular file or /dev/null as stdin #slow", function()
			local file = tmp("lines")
			write_file(file, "f1\nf2\n")
			local out, _, code = wsbeat({ "-q", srv:url("/echo?t=file") }, { redirect = "<" .. q(file) })
			assert.equal(0, code)
			assert.equal("f1\nf2\n", out)
			local err
			out, err, code = wsbeat({ "-q", "--wait", "0", srv:url("/echo?t=null") }, { redirect = "</dev/null" })
			assert.equal(0, code)
			assert.equal("", out)
			assert.equal("", err)
			assert.equal(1000, server_conn(srv, "/echo?t=null").close().code)
		end)

		it("reads a terminal without making it non-blocking; a partial line does not hold the loop #slow", function()
			local driver = tmp("pty.py")
			write_file(driver, PTY_DRIVER)
			-- the terminal's flags are those of the open file description
			-- that wsbeat shared with this shell: read them after it ended
			local cmd = ("stty -echo; cd %s && %s lua5.4 bin/wsbeat --heartbeat 0.05,5 %s; echo rc=$?; "
				.. "grep '^flags' /proc/self/fdinfo/0"):format(q(ROOT), ENV, q(srv:url("/echo?t=tty")))
			local out = H.sh(("%s %s %s %s 2>&1"):format(q(H.PYTHON), q(driver), q(cmd), argstr {
				"wait:* open", "send:hello\\n", "wait:hello\\r\\n",
				-- a partial line, then Ctrl-D: read() returns "abc"; the loop
				-- goes on (two more heartbeats), the line waits for its end
				"send:abc\\x04", "mark", "wait:* rtt ", "mark", "wait:* rtt ",
				"send:\\x04", "wait:abc\\r\\n", "wait:* closed (closed_by_user" }))
			assert.matches("\nrc=0\r?\n", out)
			assert.matches("\nSTATUS 0\n$", out)
			local flags = out:match("flags:%s*(%d+)")
			assert.is_not_nil(flags, out)
			assert.equal(0, math.floor(tonumber(flags, 8) / 0x800) % 2, "O_NONBLOCK left set on the terminal") -- 04000
			local conn = server_conn(srv, "/echo?t=tty")
			assert.equal(1000, conn.close().code)
			local got = {}
			for _, m in ipairs(conn.messages()) do got[#got + 1] = m.data end
			assert.same({ "hello", "abc" }, got)
		end)

		it("ends quietly with a close and exit 0 when stdout is a closed pipe (no death by SIGPIPE)", function()
			-- the read end is closed before wsbeat starts, so every write
			-- fails; python restores SIGPIPE's default action for the child
			local input, err = tmp("in"), tmp("err")
			write_file(input, "x\n")
			local py = "import os, subprocess, sys\nr, w = os.pipe()\nos.close(r)\n"
				.. "print(subprocess.call(['sh', '-c', sys.argv[1]], stdout=w))\n"
			local cmd = ("cd %s && %s timeout 10 lua5.4 bin/wsbeat -q %s <%s 2>%s"):format(
				q(ROOT), ENV, q(srv:url("/echo?t=epipe")), q(input), q(err))
			assert.equal("0\n", H.sh(("%s -c %s %s"):format(q(H.PYTHON), q(py), q(cmd))))
			assert.equal("", read_file(err))
			local conn = server_conn(srv, "/echo?t=epipe")
			assert.equal(1000, conn.close().code)
			assert.same({ "x" }, { conn.messages()[1].data })
		end)

		it("a second signal during the close exits at once with 128 + its number", function()
			-- behind a blackholed proxy, the close is never answered
			local proxy, p
			finally(function() H.stop(p, proxy) end)
			proxy = H.proxy(srv.port)
			p = start { "-n", "--no-heartbeat", "--close-timeout", "30", proxy:url("/echo?t=twice") }
			p:wait_for(function(s) return s:stderr():find("* open\n", 1, true) end, 5, "open")
			proxy:mode("blackhole")
			p:signal("INT")
			p:wait_for(function(s) return s:stderr():find("* closing (closed_by_user", 1, true) end, 5, "closing")
			local t0 = core.now()
			p:signal("HUP")
			assert.equal(128 + 1, p:wait_exit())
			assert.is_true(core.now() - t0 < 5)
		end)

		it("sends lines as they are typed; SIGINT closes with 1000 and exits 0", function()
			local p = start { srv:url("/echo?t=sigint") }
			finally(function() p:stop() end)
			p:wait_for(function(s) return s:stderr():find("* open\n", 1, true) end, 5, "open")
			p:write("typed\n")
			p:wait_for(function(s) return s:stdout() == "typed\n" end, 5, "echo")
			p:write("second\n")
			p:wait_for(function(s) return s:stdout() == "typed\nsecond\n" end, 5, "second echo")
			p:signal("INT")
			assert.equal(0, p:wait_exit())
			assert.matches("* closing (closed_by_user: closed by user)\n* closed (closed_by_user: closed by user)\n",
				p:stderr(), 1, true)
			assert.equal(1000, server_conn(srv, "/echo?t=sigint").close().code)
		end)

		it("probes with --heartbeat-message text; SIGTERM also ends with 0", function()
			local p = start { "--json", "--heartbeat", "0.1", "--heartbeat-message", "hb", srv:url("/echo?t=hbmsg") }
			finally(function() p:stop() end)
			p:wait_for(function(s) return select(2, s:stdout():gsub('"data":"hb"', "")) >= 2 end, 5, "2 probes")
			p:signal("TERM")
			assert.equal(0, p:wait_exit())
			local msgs = server_conn(srv, "/echo?t=hbmsg").messages()
			assert.is_true(#msgs >= 2)
			assert.same({ "text", "hb" }, { msgs[1].kind, msgs[1].data })
		end)

		it("-n does not read stdin: runs on after its end, until a signal #slow", function()
			local p = start { "-n", "--no-heartbeat", srv:url("/echo?t=nostdin") }
			finally(function() p:stop() end)
			p:wait_for(function(s) return s:stderr():find("* open\n", 1, true) end, 5, "open")
			p:eof()
			H.sleep(0.8) -- past the default --wait of 0.5 s
			assert.is_nil((read_file(p.rc) or ""):match("%d"))
			p:signal("INT")
			assert.equal(0, p:wait_exit())
			assert.equal(1000, server_conn(srv, "/echo?t=nostdin").close().code)
		end)

		it("ends with heartbeat_timeout and exit 1 when a silent peer misses its deadline", function()
			local t0 = core.now()
			local p = start { "--json", "--heartbeat", "0.1,0.2", "--no-reconnect", srv:url("/silent?t=hb") }
			finally(function() p:stop() end)
			assert.equal(1, p:wait_exit())
			assert.is_true(core.now() - t0 < 2.5)
			local evs = events(p:stdout())
			assert.same({ "open", "closed" }, states(evs))
			assert.equal("heartbeat_timeout", evs[2].cause)
			assert.equal(1006, evs[2].code)
			assert.matches("^heartbeat timeout", evs[2].reason)
			assert.matches("^wsbeat: heartbeat timeout", p:stderr())
			-- the server saw the client go without a close handshake
			assert.equal(1006, server_conn(srv, "/silent?t=hb").close().code)
		end)

		it("reports reconnects with cause, reason, attempt and delay, then gives up", function()
			local p = start { "--json", "--max-attempts", "2", "--retry-delay", "0.05", srv:url("/close/4000?reason=again") }
			finally(function() p:stop() end)
			assert.equal(1, p:wait_exit())
			local evs = events(p:stdout())
			assert.same({ "open", "reconnecting", "connecting", "open", "closed" }, states(evs))
			local rc = evs[2]
			assert.equal("closed_by_peer", rc.cause)
			assert.equal(4000, rc.code)
			assert.equal(1, rc.attempt)
			assert.same({ "connecting", "reconnect", 1 }, { evs[3].state, evs[3].cause, evs[3].attempt })
			assert.is_true(rc.delay >= 0 and rc.delay <= 0.05)
			assert.equal("gave_up", evs[5].cause)
			assert.matches("wsbeat: gave up after 2 attempts: server closed (4000", p:stderr(), 1, true)
			-- the same in words
			p = start { "--max-attempts", "2", "--retry-delay", "0.05", srv:url("/close/4000?reason=words") }
			assert.equal(1, p:wait_exit())
			p:stop()
			-- info.attempt as the library gives it: 1 = the first reconnect
			assert.matches("\n%* reconnecting %(closed_by_peer: server closed %(4000 [^\n]*again%)%) reconnect attempt 1 in 0%.0%ds\n"
				.. "%* connecting %(reconnect attempt 1%)\n", (p:stderr():gsub("words", "again")))
			assert.not_matches("attempt 2", p:stderr(), 1, true)
		end)

		it("exits 0 when the server closes normally (1000) and reconnecting is off", function()
			local p = start { "--no-reconnect", srv:url("/close/1000") }
			finally(function() p:stop() end)
			assert.equal(0, p:wait_exit())
			assert.matches("* closed (closed_by_peer: server closed (1000", p:stderr(), 1, true)
		end)

		it("shows the heartbeat round trip #slow", function()
			local out, _, code = wsbeat({ "--json", "--heartbeat", "0.05,2", "--wait", "0.4", srv:url("/echo?t=rtt") },
				{ input = "x\n" })
			assert.equal(0, code)
			local rtts = pick(events(out), function(e) return e.event == "rtt" end)
			assert.is_true(#rtts >= 1, out)
			assert.is_true(rtts[1].rtt > 0 and rtts[1].rtt < 0.5)
			local _, err = wsbeat({ "--heartbeat", "0.05,2", "--wait", "0.4", srv:url("/echo?t=rtt2") }, { input = "x\n" })
			assert.matches("\n%* rtt %d+%.%d%d ms\n", err)
		end)
	end)

	describe("without cqueues", function()
		local srv
		setup(function() srv = H.server {} end)
		teardown(function() H.stop(srv) end)

		it("is not required by the command", function()
			assert.not_matches("cqueues", read_file(ROOT .. "/bin/wsbeat"), 1, true)
		end)

		it("talks to a peer through a pipe and a FIFO and obeys signals when cqueues cannot be loaded #slow", function()
			-- the setting works
			local probe = H.sh(("cd %s && %s %s lua5.4 -e 'print(pcall(require, \"cqueues\"))' 2>&1"):format(
				q(ROOT), ENV, NO_CQUEUES))
			assert.matches("^false\t[^\n]*cqueues is not loadable here", probe)
			local out, err, code = wsbeat({ srv:url("/echo?t=nocq") }, { input = "one\ntwo\n", env = NO_CQUEUES })
			assert.equal(0, code, err)
			assert.equal("one\ntwo\n", out)
			assert.matches("* closed (closed_by_user: closed by user)\n", err, 1, true)
			local p = start({ srv:url("/echo?t=nocqfifo") }, NO_CQUEUES)
			finally(function() p:stop() end)
			p:wait_for(function(s) return s:stderr():find("* open\n", 1, true) end, 5, "open")
			p:write("live\n")
			p:wait_for(function(s) return s:stdout() == "live\n" end, 5, "echo")
			p:signal("HUP")
			assert.equal(0, p:wait_exit())
			assert.equal(1000, server_conn(srv, "/echo?t=nocqfifo").close().code)
		end)
	end)

	describe("private helpers in wsbeat.core", function()
		it("raise on misuse, naming the argument", function()
			assert.has_error(function() core._cli_read_stdin(0) end,
				"bad argument #1 to '_cli_read_stdin' (expected a size from 1 to 16777216)")
			assert.has_error(function() core._cli_watch_stdin("yes") end,
				"bad argument #1 to '_cli_watch_stdin' (boolean expected, got string)")
			assert.equal(32, core._cli_EPIPE)
		end)

		it("read a pipe, a file and /dev/null, record signals, and close their handles when the Lua state closes", function()
			local script = tmp("helpers.lua")
			write_file(script, [[
local core = require "wsbeat.core"
local mode = assert(core._cli_open_stdin())
assert(core._cli_signals())
if mode == "poll" then core._cli_watch_stdin(true) end
local got = {}
while true do
	if mode == "poll" then core.wait(5) end
	local data = core._cli_read_stdin(3)
	if data == nil then break end
	if data ~= "" then got[#got + 1] = data end
end
-- a signal to this process wakes the loop and is recorded, not obeyed
local pid = io.open("/proc/self/stat"):read("n")
os.execute("kill -HUP " .. pid .. "; kill -TERM " .. pid)
local sigs = {}
while #sigs < 2 do
	core.wait(5)
	for signo in core._cli_next_signal do sigs[#sigs + 1] = signo end
end
print(mode, table.concat(got, "|"), table.concat(sigs, ","))
-- the state closes with the stdin poll and the signal handles active
]])
			local file = tmp("file")
			write_file(file, "abcdefg")
			-- under make check-memory, these children run under valgrind too
			local vg = os.getenv("WSBEAT_UNDER_VALGRIND") and "valgrind --quiet --error-exitcode=99 "
				.. "--leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect " or ""
			local run = ("(cd %s && %s timeout %d %slua5.4 %s)"):format(q(ROOT), ENV, 10 * H.SLOW, vg, q(script))
			assert.equal("poll\tabc|def|g\t1,15\nrc=0\n", H.sh(("printf abcdefg | %s 2>&1; echo rc=$?"):format(run)))
			assert.equal("file\tabc|def|g\t1,15\nrc=0\n", H.sh(("%s <%s 2>&1; echo rc=$?"):format(run, q(file))))
			assert.equal("file\t\t1,15\nrc=0\n", H.sh(("%s </dev/null 2>&1; echo rc=$?"):format(run)))
		end)
	end)

	describe("against a peer with permessage-deflate", function()
		local srv
		setup(function() srv = H.server { deflate = true } end)
		teardown(function() H.stop(srv) end)

		it("offers compression with --compression only #slow", function()
			local out, _, code = wsbeat({ "-q", "--compression", srv:url("/echo?t=deflate") }, { input = "squeeze\n" })
			assert.equal(0, code)
			assert.equal("squeeze\n", out)
			assert.matches("permessage%-deflate", server_conn(srv, "/echo?t=deflate").connect.extensions)
			wsbeat({ "-q", srv:url("/echo?t=plain") }, { input = "" })
			assert.equal("", server_conn(srv, "/echo?t=plain").connect.extensions)
		end)
	end)

	describe("failures", function()
		it("exits 1 and prints the reason when the connection is refused (--no-reconnect)", function()
			local out, err, code = wsbeat({ "--no-reconnect", "ws://127.0.0.1:1/" }, { input = "lost\n" })
			assert.equal(1, code)
			assert.equal("", out)
			assert.matches("* closed (refused: connection refused", err, 1, true)
			assert.matches("\nwsbeat: connection refused\n$", err)
			out, err, code = wsbeat({ "--json", "-q", "--no-reconnect", "ws://127.0.0.1:1/" }, { input = "" })
			assert.equal(1, code)
			assert.same({ { event = "state", state = "closed", previous = "connecting", cause = "refused",
				reason = "connection refused", attempt = 1, unsent = 0 } }, events(out))
			assert.equal("wsbeat: connection refused\n", err)
		end)
	end)

	describe("over TLS", function()
		local srv, mtls, certs
		setup(function()
			certs = H.certs()
			srv = H.server { tls = true }
			mtls = H.server { tls = true, client_ca = certs .. "/ca.pem" }
		end)
		teardown(function() H.stop(srv, mtls) end)

		it("verifies the server with --ca", function()
			local out, err, code = wsbeat({ "-q", "--ca", certs .. "/ca.pem", srv:url("/echo?t=ca") }, { input = "secure\n" })
			assert.equal(0, code)
			assert.equal("", err)
			assert.equal("secure\n", out)
			assert.equal(1000, server_conn(srv, "/echo?t=ca").close().code)
		end)

		it("fails without a trusted CA (exit 1, cause tls), connects with -k #slow", function()
			local out, err, code = wsbeat({ "--json", srv:url("/echo?t=noca") }, { input = "x\n" })
			assert.equal(1, code)
			local evs = events(out)
			assert.same({ "closed" }, states(evs))
			assert.equal("tls", evs[1].cause)
			assert.matches("unable to get local issuer certificate", evs[1].reason, 1, true)
			assert.matches("wsbeat: TLS handshake failed: certificate verify failed", err, 1, true)
			-- the reason, then what to do about it
			assert.equal("wsbeat: " .. evs[1].reason .. "\nwsbeat: hint: use --ca FILE to trust the server's CA "
				.. "(or --capath DIR), or -k/--insecure to skip verification\n", err)
			out, err, code = wsbeat({ "-q", "-k", srv:url("/echo?t=insecure") }, { input = "x\n" })
			assert.equal(0, code)
			assert.equal("", err)
			assert.equal("x\n", out)
		end)

		it("presents a client certificate with --cert and --key", function()
			local out, err, code = wsbeat({ "-q", "--ca", certs .. "/ca.pem", "--cert", certs .. "/client.pem",
				"--key", certs .. "/client.key", mtls:url("/echo?t=mtls") }, { input = "me\n" })
			assert.equal(0, code, err)
			assert.equal("me\n", out)
			out, err, code = wsbeat({ "-q", "--no-reconnect", "--ca", certs .. "/ca.pem", mtls:url("/echo?t=nocert") },
				{ input = "" })
			assert.equal(1, code)
			assert.equal("", out)
			assert.equal("wsbeat: the server requires a client certificate and none is configured (tls.cert_file); "
				.. "it closed the connection\nwsbeat: hint: present a client certificate with --cert FILE and --key FILE\n", err)
		end)

		it("checks the name given with --server-name", function()
			local _, err, code = wsbeat({ "-q", "--ca", certs .. "/ca.pem", "--server-name", "other.example",
				srv:url("/echo?t=name") }, { input = "" })
			assert.equal(1, code)
			assert.matches("does not match host name 'other.example'", err, 1, true)
			local hint = "\nwsbeat: hint: connect by a name the certificate holds, or give that name with "
				.. "--server-name NAME; -k/--insecure skips verification\n"
			assert.equal(hint, err:sub(-#hint))
		end)
	end)
end)
