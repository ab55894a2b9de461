-- The server side (wsbeat.listen) against a real browser: headless
-- chromium's own WebSocket client (spec/browser.lua) talks to a wsbeat
-- server in this process. browser.run() waits with H.run_until, which
-- serves wsbeat, so the server answers while chromium runs.
local H = require "helper"
local browser = require "browser"
local json = require "dkjson"

-- 100 KB of text, built the same way here and in the page
local ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
local BIG_LEN = 100 * 1024
local BIG = ALPHABET:rep(H.idiv(BIG_LEN, #ALPHABET) + 1):sub(1, BIG_LEN)
local BYTES = { 0, 1, 2, 127, 128, 200, 254, 255 }

-- A page that connects to p.url, sends p.send in order once open ({text =
-- s}, {big = true}: the 100 KB text, {bytes = {...}}: an ArrayBuffer),
-- and once p.expect messages came back does p.after: {close = code,
-- reason = r} or {text = s} (a send). It reports what came back, the close
-- event it saw, its errors and its navigator.userAgent.
local function page(p)
	return ([[
<!doctype html><meta charset="utf-8"><title>wsbeat server</title>
<script>
"use strict";
const P = %s;
const big = P.alphabet.repeat(Math.ceil(P.bigLen / P.alphabet.length)).slice(0, P.bigLen);
const got = { messages: [], errors: 0, opened: false, ua: navigator.userAgent };
const ws = new WebSocket(P.url);
ws.binaryType = "arraybuffer";
ws.onopen = () => {
	got.opened = true;
	got.extensions = ws.extensions;
	for (const s of P.send) {
		if (s.text !== undefined) ws.send(s.text);
		else if (s.big) ws.send(big);
		else ws.send(new Uint8Array(s.bytes).buffer);
	}
};
ws.onmessage = (ev) => {
	got.messages.push(typeof ev.data === "string"
		? { kind: "text", data: ev.data }
		: { kind: "binary", bytes: Array.from(new Uint8Array(ev.data)) });
	if (got.messages.length === P.expect && P.after) {
		if (P.after.close) ws.close(P.after.close, P.after.reason);
		else ws.send(P.after.text);
	}
};
ws.onerror = () => { got.errors++; };
ws.onclose = (ev) => {
	got.close = { code: ev.code, reason: ev.reason, wasClean: ev.wasClean };
	window.__result = got;
};
</script>
]]):format(json.encode {
		url = p.url, send = p.send or setmetatable({}, { __jsontype = "array" }), expect = p.expect or 0, after = p.after,
		alphabet = ALPHABET, bigLen = BIG_LEN,
	})
end

-- A wsbeat echo server (H.listen) that also records the upgrades it saw;
-- a text "close-me" is answered by a close with 4001, the path /refuse by
-- 403. opts.on_message replaces the echo.
local function server(opts)
	opts = opts or {}
	local upgrades = {}
	local s, rec = H.listen {
		compression = opts.compression,
		on_upgrade = function(req)
			upgrades[#upgrades + 1] = {
				path = req.path, remote = req.remote,
				origin = req.headers.origin, user_agent = req.headers["user-agent"],
			}
			if req.path == "/refuse" then return false, 403, "not you" end
			return true
		end,
		on_message = opts.on_message or function(conn, data, kind)
			if data == "close-me" then
				conn:close(4001, "server says bye")
			else
				conn:send(data, kind)
			end
		end,
	}
	rec.upgrades = upgrades
	return s, rec
end

describe("server and a browser: headless chromium against wsbeat.listen #server #browser #slow", function()
	setup(function()
		assert(browser.available())
	end)

	it("echoes text, binary and 100 KB of text; the page's close code reaches the server; on_upgrade sees the browser", function()
		local s, rec = server()
		finally(function() s:close() end)
		local results = browser.run({ page {
			url = rec.url("/chat?room=1"),
			send = { { text = "hello" }, { big = true }, { bytes = BYTES } },
			expect = 3, after = { close = 4000, reason = "page says bye" },
		} }, 15)
		local r = results[1]
		assert.is_true(r.opened)
		assert.equal(0, r.errors)
		assert.equal(3, #r.messages)
		assert.same({ kind = "text", data = "hello" }, r.messages[1])
		assert.equal("text", r.messages[2].kind)
		assert.equal(BIG_LEN, #r.messages[2].data)
		assert.is_true(r.messages[2].data == BIG, "the 100 KB text came back changed")
		assert.same({ kind = "binary", bytes = BYTES }, r.messages[3])
		-- the server echoed the page's close: a clean close on both sides
		assert.same({ code = 4000, reason = "page says bye", wasClean = true }, r.close)
		-- the server's side: what it got, in order, and the close code
		assert.equal(3, #rec.messages)
		assert.same({ "text", "text", "binary" }, { rec.messages[1].kind, rec.messages[2].kind, rec.messages[3].kind })
		assert.is_true(rec.messages[2].data == BIG, "the server got the 100 KB text changed")
		assert.equal(string.char(H.unpack(BYTES)), rec.messages[3].data)
		H.run_until(function() return #rec.closed() == 1 end, 5, "the server's connection to close")
		local c = rec.closed()[1]
		assert.equal("closed_by_peer", c.cause)
		assert.equal(4000, c.code)
		-- on_upgrade saw the browser: its Origin (a file:// page's is
		-- "null") and its User-Agent, the one navigator.userAgent tells
		assert.equal(1, #rec.upgrades)
		local u = rec.upgrades[1]
		assert.equal("/chat", u.path)
		assert.equal("127.0.0.1", u.remote)
		assert.equal("null", u.origin)
		assert.equal(r.ua, u.user_agent)
		assert.matches("HeadlessChrome", u.user_agent, 1, true)
	end)

	it("with compression = true the browser's permessage-deflate offer is agreed; messages both ways stay intact", function()
		local s, rec = server { compression = true }
		finally(function() s:close() end)
		local results = browser.run({ page {
			url = rec.url("/z"),
			send = { { text = "hello" }, { big = true }, { bytes = BYTES }, { big = true } },
			expect = 4, after = { close = 1000 },
		} }, 15)
		local r = results[1]
		assert.is_true(r.opened)
		assert.equal(0, r.errors)
		assert.matches("^permessage%-deflate", r.extensions)
		assert.equal(4, #r.messages)
		assert.same({ kind = "text", data = "hello" }, r.messages[1])
		assert.is_true(r.messages[2].data == BIG and r.messages[4].data == BIG, "the 100 KB text came back changed")
		assert.same({ kind = "binary", bytes = BYTES }, r.messages[3])
		assert.is_true(rec.messages[2].data == BIG and rec.messages[4].data == BIG, "the server got the text changed")
		assert.same({ code = 1000, reason = "", wasClean = true }, r.close)
	end)

	it("the server's close code and reason reach the page", function()
		local s, rec = server()
		finally(function() s:close() end)
		local results = browser.run({ page {
			url = rec.url("/"), send = { { text = "one" } }, expect = 1, after = { text = "close-me" },
		} }, 15)
		local r = results[1]
		assert.same({ { kind = "text", data = "one" } }, r.messages)
		assert.equal(0, r.errors)
		assert.same({ code = 4001, reason = "server says bye", wasClean = true }, r.close)
		H.run_until(function() return #rec.closed() == 1 end, 5, "the server's connection to close")
		local c = rec.closed()[1]
		assert.equal("closed_by_user", c.cause)
		assert.equal(4001, c.code)
	end)

	it("a refusal by on_upgrade is a failed connection for the page", function()
		local s, rec = server()
		finally(function() s:close() end)
		local results = browser.run({ page { url = rec.url("/refuse"), send = { { text = "never" } } } }, 15)
		local r = results[1]
		assert.is_false(r.opened)
		assert.equal(1, r.errors)
		assert.equal(1006, r.close.code)
		assert.is_false(r.close.wasClean)
		assert.equal(1, s:stats().refused)
		assert.equal(0, s:stats().upgraded)
		assert.same({}, rec.states)
		assert.same({}, rec.messages)
	end)

	it("broadcasts to two browser pages at once", function()
		local ready = 0
		local s, rec
		s, rec = server { on_message = function(_, data)
			if data == "ready" then
				ready = ready + 1
				if ready == 2 then assert(s:broadcast("to all") == 2) end
			end
		end }
		finally(function() s:close() end)
		local p = { url = rec.url("/"), send = { { text = "ready" } }, expect = 1, after = { close = 1000, reason = "" } }
		local results = browser.run({ page(p), page(p) }, 15)
		for i = 1, 2 do
			assert.same({ { kind = "text", data = "to all" } }, results[i].messages)
			assert.equal(1000, results[i].close.code)
			assert.is_true(results[i].close.wasClean)
		end
		assert.equal(2, ready)
		H.run_until(function() return #rec.closed() == 2 end, 5, "the server's connections to close")
		assert.equal(2, s:stats().upgraded)
	end)
end)
