local H = require "helper"
local wsbeat = require "wsbeat"

describe("logging", function()
	local srv
	setup(function() srv = H.server {} end)
	teardown(function() wsbeat.log(nil) H.stop(srv) end)

	it("routes state transitions, probes and pongs to a Lua function by level", function()
		local lines = {}
		wsbeat.log(function(level, text) lines[#lines + 1] = level .. " " .. text end, "debug")
		local ws = H.client(srv:url("/echo?log"), { heartbeat = { interval = 0.05, timeout = 1 } })
		H.wait_state(ws, "open")
		H.run_until(function()
			for _, l in ipairs(lines) do if l:find("pong, rtt") then return true end end
		end, 3, "a pong line")
		ws:close()
		H.wait_state(ws, "closed")
		local all = table.concat(lines, "\n")
		assert.matches("info ws://127.0.0.1:%d+/echo%?log: connecting %-> open %(connected: connected%)", all)
		assert.matches("debug 127.0.0.1: heartbeat probe sent %(ping%)", all)
		assert.matches("info ws://127.0.0.1:%d+/echo%?log: closing %-> closed %(closed_by_user", all)
	end)

	it("filters by level and can be switched off", function()
		local lines = {}
		wsbeat.log(function(level, text) lines[#lines + 1] = level end, "warn")
		local ws = H.client(srv:url("/status/503"), { reconnect = { delay = 0.01, max_attempts = 2 } })
		H.wait_state(ws, "closed")
		for _, l in ipairs(lines) do assert.is_true(l == "warn" or l == "error", l) end
		assert.is_true(#lines >= 2) -- reconnecting and gave up
		wsbeat.log(nil)
		local n = #lines
		local ws2 = H.client(srv:url("/status/503"), { reconnect = false })
		H.wait_state(ws2, "closed")
		assert.equal(n, #lines)
	end)

	it("writes to stderr when asked", function()
		local out = H.sh(("cd %s && LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;' lua5.4 -e " ..
			"'local w = require \"wsbeat\"; w.log(\"stderr\", \"info\"); local ws = w.connect(\"ws://127.0.0.1:1/\", {reconnect=false}); w.run(5)' 2>&1")
			:format(H.quote(H.ROOT)))
		assert.matches("wsbeat warn: ws://127.0.0.1:1/: connecting %-> closed %(refused", out)
	end)

	it("rejects bad arguments", function()
		assert.has_error(function() wsbeat.log(42) end, "bad argument #1 to 'log' (expected a function, \"stderr\" or nil)")
		assert.has_error(function() wsbeat.log("stderr", "loud") end, "bad argument #2 to 'log' (expected 'error', 'warn', 'info' or 'debug')")
	end)
end)

describe("wsbeat.stats()", function()
	it("counts clients by state and totals, including clients already collected", function()
		local srv = H.server {}
		finally(function() srv:stop() end)
		local before = wsbeat.stats()
		local ws, rec = H.client(srv:url("/echo?stats"), {
			on_state = function(ws, st) if st == "open" then ws:send("12345") end end,
		})
		H.wait_state(ws, "open")
		local s = wsbeat.stats()
		assert.equal(before.open + 1, s.open)
		H.run_until(function() return #rec.messages == 1 end, 5)
		ws:close()
		H.wait_state(ws, "closed")
		ws, rec = nil, nil -- luacheck: ignore 311 (drop the references)
		collectgarbage() collectgarbage()
		local after = wsbeat.stats()
		assert.equal(before.messages_sent + 1, after.messages_sent)
		assert.equal(before.messages_received + 1, after.messages_received)
		assert.equal(before.bytes_sent + 5, after.bytes_sent)
		assert.equal(before.open, after.open)
	end)
end)
