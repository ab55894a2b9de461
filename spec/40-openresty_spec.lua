-- wsbeat inside nginx (its Lua module, LuaJIT): examples/openresty, whose
-- worker 0 holds a client to a python server through wsbeat.openresty and
-- every worker serves what it received over HTTP.  Both ways of waking the
-- loop: wsbeat's waker thread ("socket") and polling ("poll").
local H = require "helper"
local q = H.quote
local now = require("wsbeat.core").now

-- /feed, parsed: wake, received, cosocket, states { {state, cause, t} },
-- messages { text }; nil while nginx does not answer yet.
local function feed(port)
	local out = H.sh(("curl -s --max-time 2 http://127.0.0.1:%d/feed"):format(port))
	if not out:match("^worker %d") then return nil end
	local f = { states = {}, messages = {} }
	for line in out:gmatch("[^\n]+") do
		local k, v = line:match("^(%S+) (.*)$")
		if k == "state" then
			local s, c, t = v:match("^(%S+) (%S+) (%S+)$")
			f.states[#f.states + 1] = { state = s, cause = c, t = tonumber(t) }
		elseif k == "message" then
			f.messages[#f.messages + 1] = v
		elseif k then
			f[k] = v
		end
	end
	f.received = tonumber(f.received)
	return f
end

-- Poll /feed until pred(f) holds; fail with the last answer at the deadline.
local function wait_feed(port, pred, timeout, what)
	local deadline, f = now() + timeout * H.SLOW, nil
	while now() < deadline do
		f = feed(port)
		if f and pred(f) then return f end
		H.sleep(0.05)
	end
	local states = {}
	for _, s in ipairs(f and f.states or {}) do states[#states + 1] = s.state .. "/" .. s.cause end
	error(("timed out waiting for %s; states: %s, received %s"):format(what,
		table.concat(states, ","), f and f.received or "(no answer)"), 2)
end

local function count(f, state, cause)
	local n = 0
	for _, s in ipairs(f.states) do
		if s.state == state and (not cause or s.cause == cause) then n = n + 1 end
	end
	return n
end

-- The ticks arrive echoed in the order sent: "tick k", k rising by one
-- (rising only, across an outage: what was sent to the stopped server
-- before the heartbeat found it dead was never echoed).
local function assert_ticks(messages, gap)
	local prev
	for _, m in ipairs(messages) do
		local k = tonumber(m:match("^tick (%d+)$"))
		assert(k, "not a tick: " .. m)
		if prev and gap then
			assert.is_true(k > prev, ("tick %d after tick %d"):format(k, prev))
		elseif prev then
			assert.equal(prev + 1, k)
		end
		prev = k
	end
end

describe("OpenResty #openresty #slow", function()
	setup(function()
		local out = H.sh(("cd %s && make -s all LUA_VERSION=jit 2>&1; echo rc=$?"):format(q(H.ROOT)))
		assert.matches("rc=0\n$", out)
	end)

	for _, wake in ipairs { "socket", "poll" } do
		it(("an nginx worker holds a client, survives the server's SIGSTOP and restart, serves it over HTTP (wake = %s)")
			:format(wake), function()
			local srv, srv2, ngx
			finally(function() H.stop(ngx, srv2, srv) end)
			srv = H.server {}
			local HB = 0.3
			local port
			ngx, port = H.start_peer({ "sh", H.ROOT .. "/examples/openresty/run.sh", H.tmpdir() .. "/ngx-" .. wake,
				srv:url("/echo"), "", wake, tostring(HB) }, { name = "nginx", ready = "^HTTP (%d+)", stderr = false })
			port = tonumber(port)

			-- open, ticks echoed in order, a cosocket used by a callback
			local f = wait_feed(port, function(x) return (x.received or 0) >= 5 end, 10, "5 echoed ticks")
			assert.equal(wake, f.wake) -- (no fallback from socket to poll)
			assert.equal("open", f.states[1].state)
			assert.equal("connected", f.states[1].cause)
			assert.equal("hello from nginx", f.cosocket)
			assert_ticks(f.messages)
			assert.equal("tick 1", srv:wait_event("message").data)

			-- the server stops answering: the heartbeat finds it dead
			local stopped = now()
			srv:signal("STOP")
			f = wait_feed(port, function(x) return count(x, "reconnecting") >= 1 end, 5, "reconnecting")
			local dead = f.states[2]
			assert.equal("reconnecting", dead.state)
			assert.equal("heartbeat_timeout", dead.cause)
			-- a probe after HB of silence, HB for its answer: by the
			-- server's clock of nginx's, from the last message it had sent
			local detected = now() - stopped
			assert.is_true(detected >= HB and detected < 2 * HB + 1.5, "detected after " .. detected)

			-- killed and restarted on its port: reconnected, ticks again
			srv:signal("KILL")
			srv:stop()
			srv2 = H.server { port = srv.port }
			f = wait_feed(port, function(x) return count(x, "open") >= 2 and #x.messages > 0 end, 10, "open again")
			local first_new = srv2:wait_event("message")
			assert.matches("^tick %d+$", first_new.data)
			f = wait_feed(port, function(x) return x.received >= f.received + 5 end, 10, "5 more ticks")
			assert_ticks(f.messages, true)
			local opens = {}
			for _, s in ipairs(f.states) do
				if s.state == "open" then opens[#opens + 1] = s.cause end
			end
			assert.same({ "connected", "connected" }, opens)
			for _, s in ipairs(f.states) do
				assert.is_not.equal("closed", s.state)
			end

			-- nginx quits gracefully: the server sees 1001 going away
			ngx:signal("QUIT")
			local closed = srv2:wait_event("close", nil, 5)
			assert.equal(1001, closed.code)
			assert.equal("going away", closed.reason)
			local log = H.read_file(ngx.log)
			assert.not_matches("%[error%]", log)
			assert.not_matches("%[alert%]", log)
			-- (nginx without OpenResty's patches warns of ngx.sleep(0))
			assert.not_matches("ngx%.sleep%(0%)", log)
		end)
	end
end)
