-- Each integration example in examples/ runs against a real local server.
local H = require "helper"

-- name: a file in examples/; args: a list of its arguments
local function run_example(name, args)
	local words = {}
	for i, a in ipairs(args) do words[i] = H.quote(a) end
	local out = H.sh(("cd %s && LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;' timeout 30 lua5.4 %s %s 2>&1; echo rc=$?")
		:format(H.quote(H.ROOT), H.quote("examples/" .. name), table.concat(words, " ")))
	return out
end

describe("examples", function()
	local srv
	setup(function() srv = H.server {} end)
	teardown(function() H.stop(srv) end)

	it("luv: uv.new_poll(wsbeat.fd()) and a timer from wsbeat.timeout() next to luv's own timers", function()
		local out = run_example("luv.lua", { srv:url("/echo?luv"), "10" })
		assert.matches("rc=0", out, 1, true)
		local echoes, ticks, state = out:match("echoes=(%d+) ticks=(%d+) state=(%a+)")
		assert.equal("10", echoes, out)
		assert.is_true(tonumber(ticks) >= 10, "luv's ticker starved: " .. out)
		assert.equal("closed", state)
		local ev = srv:wait_event("close", function(e) return e.reason == "luv done" end)
		assert.equal(1000, ev.code)
	end)

	it("LuaSocket: socket.select on clients (getfd/dirty) next to a UDP socket", function()
		local out = run_example("select.lua", { srv:url("/echo?select"), "10" })
		assert.matches("rc=0", out, 1, true)
		assert.matches("echoes=10 datagrams=10 state=closed", out, 1, true)
		assert.equal(1000, srv:wait_event("close", function(e) return e.reason == "select done" end).code)
	end)

	it("cqueues: several clients in one controller, receive() in coroutines, ws as a pollable", function()
		local out = run_example("cqueues.lua", { srv.base, "3", "5" })
		assert.matches("rc=0", out, 1, true)
		assert.matches("clients=3 messages=15 in_order=true", out, 1, true)
		assert.equal(3, #(function()
			local l = {}
			for _, e in ipairs(srv:events("close")) do if e.reason == "cqueues done" then l[#l + 1] = e end end
			return l
		end)())
	end)

	it("game loop: 60 fps, one step() per frame, slow frames do not kill the heartbeat #slow", function()
		local out = run_example("gameloop.lua", { srv:url("/echo?game"), "3" })
		assert.matches("rc=0", out, 1, true)
		local frames, slow, sent, updates, _, tr = out:match("frames=(%d+) slow=(%d+) sent=(%d+) updates=(%d+) x=(%d+) transitions=(%S+)")
		assert.is_truthy(frames, out)
		assert.is_true(tonumber(slow) >= 2, out)
		assert.is_true(tonumber(updates) >= tonumber(sent) - 1, out) -- the last echo may race the close
		-- heartbeat 0.05 + 0.1 and frames of 0.5 s: still one connection throughout
		assert.equal("open:connected,closing:closed_by_user,closed:closed_by_user", tr)
	end)
end)
