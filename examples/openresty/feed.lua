--- An nginx worker keeps a wsbeat client to a WebSocket feed; every worker
-- serves what it received over HTTP.  (examples/openresty/README.md)
--
-- One connection per nginx, not per worker: worker 0 holds the client and
-- writes what arrives into a shared dict, which every worker reads.  nginx
-- restarts a worker that dies with the same id, so the client comes back.
-- luacheck: globals ngx
local M = {}

local KEEP = 50 -- messages kept for /feed

-- opts: url; wake ("socket" | "poll"); heartbeat (seconds, default 5);
-- tick (seconds between the messages this example sends, default 0.05).
function M.init(opts)
	if ngx.worker.id() ~= 0 then return end
	local driver = require "wsbeat.openresty"
	local feed = ngx.shared.feed
	local hb = opts.heartbeat or 5
	local http_port = opts.http_port
	local ws
	ws = driver.connect(opts.url, {
		heartbeat = { interval = hb, timeout = hb },
		reconnect = { delay = 0.05, max_delay = 1, min_uptime = 0.5 },
		on_state = function(_, state, info)
			feed:rpush("states", ("%s %s %.3f"):format(state, info.cause or "-", ngx.now()))
			if state == "open" and http_port then
				-- a callback may use cosockets: ask this nginx for /hello
				local sock = ngx.socket.tcp()
				sock:settimeouts(1000, 1000, 1000)
				local ok = sock:connect("127.0.0.1", http_port)
				if ok then
					sock:send("GET /hello HTTP/1.0\r\nHost: localhost\r\n\r\n")
					local body = sock:receive("*a") or ""
					feed:set("cosocket", body:match("\r\n\r\n(.*)$") or "")
					sock:close()
				end
			end
		end,
		on_message = function(_, data)
			feed:rpush("messages", data)
			if feed:llen("messages") > KEEP then feed:lpop("messages") end
			feed:incr("received", 1, 0)
		end,
	})
	local seq = 0
	ngx.timer.every(opts.tick or 0.05, function(premature)
		if premature or ws:state() ~= "open" then return end
		seq = seq + 1
		ws:send("tick " .. seq)
	end)
	assert(driver.start { wake = opts.wake })
	feed:set("wake", driver.stats().wake)
end

--- /feed: what worker 0's client saw, one item per line.
function M.serve()
	local feed = ngx.shared.feed
	ngx.header.content_type = "text/plain"
	ngx.say("worker ", ngx.worker.id())
	ngx.say("wake ", feed:get("wake") or "-")
	ngx.say("received ", feed:get("received") or 0)
	ngx.say("cosocket ", feed:get("cosocket") or "-")
	for _, key in ipairs { "states", "messages" } do
		local n = feed:llen(key) or 0
		for _ = 1, n do
			local v = feed:lpop(key)
			feed:rpush(key, v) -- (a rotation: the list is read whole)
			ngx.say(key == "states" and "state " or "message ", v)
		end
	end
end

return M
