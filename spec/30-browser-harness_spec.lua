-- The browser harness (spec/browser.lua, spec/fixtures/browser.js) proven
-- against a peer that is not wsbeat: headless chromium's own WebSocket
-- client talks to the python3-websockets echo server (spec/fixtures/server.py).
-- And its cleanup: a run stopped midway, or whose parent process exits,
-- leaves no chromium process behind; failures say why.
local H = require "helper"
local browser = require "browser"
local core = require "wsbeat.core"
local json = require "dkjson"

-- 100 KB of text, built the same way here and in the page
local ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
local BIG_LEN = 100 * 1024
local BIG = ALPHABET:rep(H.idiv(BIG_LEN, #ALPHABET) + 1):sub(1, BIG_LEN)
local BYTES = { 0, 1, 2, 127, 128, 200, 254, 255 }

-- A page (JS literals made by json.encode) that sends "hello" (or its own text), the 100 KB text and BYTES
-- as an ArrayBuffer, closes with 1000 once all three echoes are back, and
-- reports what came back, in order, and the close event it saw.
local function echo_page(url, first)
	return ([[
<!doctype html><meta charset="utf-8"><title>echo</title>
<script>
"use strict";
const big = %s.repeat(%d).slice(0, %d);
const got = { messages: [], errors: 0 };
const ws = new WebSocket(%s);
ws.binaryType = "arraybuffer";
ws.onopen = () => {
	ws.send(%s);
	ws.send(big);
	ws.send(new Uint8Array([%s]).buffer);
};
ws.onmessage = (ev) => {
	got.messages.push(typeof ev.data === "string"
		? { kind: "text", data: ev.data }
		: { kind: "binary", bytes: Array.from(new Uint8Array(ev.data)) });
	if (got.messages.length === 3) ws.close(1000, "done");
};
ws.onerror = () => { got.errors++; };
ws.onclose = (ev) => {
	window.__result = { messages: got.messages, errors: got.errors,
		close: { code: ev.code, reason: ev.reason, wasClean: ev.wasClean } };
};
</script>
]]):format(json.encode(ALPHABET), H.idiv(BIG_LEN, #ALPHABET) + 1, BIG_LEN, json.encode(url), json.encode(first),
		table.concat(BYTES, ","))
end

local function assert_echoed(result, first)
	assert.is_table(result)
	assert.equal(0, result.errors)
	assert.equal(3, #result.messages)
	assert.same({ kind = "text", data = first }, result.messages[1])
	assert.equal("text", result.messages[2].kind)
	assert.equal(#BIG, #result.messages[2].data)
	assert.is_true(result.messages[2].data == BIG, "the 100 KB text came back changed")
	assert.same({ kind = "binary", bytes = BYTES }, result.messages[3])
	assert.same({ code = 1000, reason = "done", wasClean = true }, result.close)
end

describe("browser harness: headless chromium against a python echo server #browser #slow", function()
	local srv
	setup(function()
		assert(browser.available())
		srv = H.server { kind = "python" }
	end)
	teardown(function() H.stop(srv) end)

	it("echoes a text, 100 KB of text and binary bytes; the page sees its close code", function()
		local results, report = browser.run({ echo_page(srv.base .. "/", "hello") }, 10)
		assert.equal(1, #results)
		assert.is_false(report.timedOut)
		assert_echoed(results[1], "hello")
		-- and the server saw a browser: its Origin, its three messages, its close
		srv:wait_event("connect")
		local conns = srv:events("connect")
		local conn = conns[#conns]
		assert.equal("/", conn.path)
		assert.equal("null", conn.headers.origin) -- a file:// page
		assert.matches("HeadlessChrome", conn.headers["user-agent"], 1, true)
		local sizes = {}
		for _, ev in ipairs(srv:events("message")) do
			if ev.id == conn.id then sizes[#sizes + 1] = ev.kind .. " " .. ev.len end
		end
		assert.same({ "text 5", "text " .. BIG_LEN, "binary " .. #BYTES }, sizes)
		srv:wait_event("close", function(ev) return ev.id == conn.id and ev.code == 1000 end)
	end)

	it("runs two pages at once, each its own client", function()
		local before = #srv:events("connect")
		local results = browser.run({
			echo_page(srv.base .. "/", "from page 1"),
			echo_page(srv.base .. "/", "from page 2"),
		}, 10)
		assert.equal(2, #results)
		assert_echoed(results[1], "from page 1")
		assert_echoed(results[2], "from page 2")
		local conns = srv:events("connect")
		assert.equal(before + 2, #conns)
		assert.are_not.equal(conns[#conns].id, conns[#conns - 1].id)
	end)

	it("raises when a page sets no result, once its timeout has passed, with the page's console", function()
		local page = [[<!doctype html><script>
console.log("never reporting");
setTimeout(() => { throw new Error("boom"); }, 0);
</script>]]
		local timeout = 2
		local t0 = core.now()
		local ok, err = pcall(browser.run, { page }, timeout)
		local elapsed = core.now() - t0
		assert.is_false(ok)
		assert.matches(("timed out after %g s"):format(timeout * H.SLOW), err, 1, true)
		assert.matches("console.log: never reporting", err, 1, true)
		assert.matches("exception: Error: boom", err, 1, true)
		assert.is_true(elapsed >= timeout, "returned after " .. elapsed .. " s")
		-- chromium's start and shutdown on top: a few seconds at most
		assert.is_true(elapsed < timeout + 10 * H.SLOW, "took " .. elapsed .. " s")
	end)

	-- a run up to the point where chromium and its helpers are up (it has
	-- opened its debugging port: the profile has DevToolsActivePort)
	local function started(run)
		H.run_until(function()
			return #H.sh("ls " .. H.quote(run.dir) .. "/wsbeat-chromium-*/profile/DevToolsActivePort 2>/dev/null") > 0
		end, browser.START_ALLOWANCE, "chromium to start")
		local procs = run:chromium_processes()
		assert.is_true(#procs > 1, "chromium's processes: " .. table.concat(procs, " "))
		return procs
	end

	it("stops a run midway: browser.js and every chromium process are gone", function()
		local run = browser.start({ "<!doctype html><title>no result</title>" }, 60)
		finally(function() run:stop() end)
		local procs = started(run)
		local t0 = core.now()
		assert.is_nil(run:stop())
		assert.is_true(core.now() - t0 < browser.TERM_GRACE, "stop() took the long way")
		assert.is_true(H.exited(run.pid))
		for _, pid in ipairs(procs) do assert.is_true(H.exited(pid), "chromium process " .. pid .. " is left") end
		assert.same({}, run:chromium_processes())
		-- browser.js reported why it stopped
		assert.matches("stopped by SIGTERM", run.report_text or "", 1, true)
	end)

	it("gives up as soon as its parent process has exited, chromium and all", function()
		local parent = H.start_peer({ "sh", "-c", "echo READY; exec sleep 600" }, { name = "parent", ready = "^READY" })
		local run = browser.start({ "<!doctype html><title>no result</title>" }, 60, { parent = parent.pid })
		finally(function()
			run:stop()
			parent:stop()
		end)
		local procs = started(run)
		parent:stop()
		-- browser.js looks every 0.2 s, then kills chromium and waits for it
		H.run_until(function() return H.exited(run.pid) end, 5, "browser.js to give up")
		for _, pid in ipairs(procs) do assert.is_true(H.exited(pid), "chromium process " .. pid .. " is left") end
		local ok, err = pcall(run.wait, run)
		assert.is_false(ok)
		assert.matches("the parent process " .. parent.pid .. " has exited", err, 1, true)
	end)

	it("says so clearly when chromium cannot be started", function()
		local ok, err = pcall(browser.run, { "about:blank" }, 5, { chromium = "/nonexistent/chromium" })
		assert.is_false(ok)
		assert.matches("cannot start /nonexistent/chromium", err, 1, true)
	end)
end)
