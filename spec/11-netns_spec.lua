-- Real packet loss: a server and a client in a network namespace of their
-- own, with nft rules that drop packets on its loopback.  Needs root,
-- iproute2 and nftables (CI runs as root; scripts/install-deps.sh installs them).
local H = require "helper"
local json = require "dkjson"

local function probe(mode)
	local ns = H.netns()
	local srv
	local ok, res = pcall(function()
		srv = H.server { netns = ns.name }
		local q = H.quote
		local out = ns:exec(("cd %s && LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;' "
			.. "lua5.4 spec/fixtures/netns_probe.lua %s %s %d 2>&1")
			:format(q(H.ROOT), q(mode), q(("ws://127.0.0.1:%d/echo"):format(srv.port)), srv.port))
		local line = out:match("(%b{})%s*$")
		assert(line, "probe output: " .. out)
		return assert(json.decode(line))
	end)
	local stopped, err = pcall(H.stop, srv)
	ns:delete() -- rules live in the namespace and go with it
	assert(ok, res)
	assert(stopped, err)
	return res
end

local function find(tr, cause)
	for _, t in ipairs(tr) do if t.cause == cause then return t end end
end

-- #root #netns: network namespaces and nft rules need root
describe("a real partition (nft drop in a network namespace) #root #netns", function()
	it("is detected in bound, retries time out while it lasts, and the client recovers", function()
		local r = probe("partition")
		assert.is_true(r.ok, r.err)
		assert.is_true(r.detected, "no heartbeat timeout")
		local hb = find(r.transitions, "heartbeat_timeout")
		-- interval 0.2 + timeout 0.3 after the last byte received
		local dt = hb.t - r.rx_before
		assert.is_true(dt >= 0.49 and dt <= 0.5 + 0.6, "detected after " .. dt)
		assert.equal("reconnecting", hb.state)
		assert.is_true(r.retry_timed_out, "no retry timed out during the partition")
		assert.is_true(r.reopened, "did not reopen after the partition healed")
		assert.equal("open", r.final_state)
	end)
end)

describe("a lossy link (30 % of packets dropped) #root #netns", function()
	it("is not declared dead with a sane timeout, and every message arrives", function()
		local r = probe("loss")
		assert.is_true(r.ok, r.err)
		assert.is_nil(find(r.transitions, "heartbeat_timeout"), json.encode(r.transitions))
		assert.equal("open", r.transitions[1].state)
		assert.equal("closing", r.transitions[2].state) -- nothing in between
		assert.equal(r.sent, r.echoes)
		assert.equal("open", r.final_state)
	end)
end)

-- connect() fails inside libwebsockets' call there, which reports nothing:
-- the reason is found again from the kernel's route lookup
describe("no route to the server (a namespace with loopback only) #root #netns", function()
	it("fails the attempt at once and says why, naming the address", function()
		local ns = H.netns()
		local ok, out = pcall(function()
			return ns:exec(("cd %s && LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;' "
				.. "lua5.4 spec/fixtures/connect_once.lua ws://10.9.9.9:8080/ 2>&1"):format(H.quote(H.ROOT)))
		end)
		ns:delete()
		assert(ok, out)
		local cause, reason, dt = out:match("^([^\t]+)\t([^\t]+)\t(%S+)")
		assert(cause, "output: " .. out)
		assert.equal("network", cause)
		assert.equal("connection failed: Network is unreachable (10.9.9.9 port 8080)", reason)
		-- (at once: not after connect_timeout's 5 s)
		assert.is_true(tonumber(dt) < 2, dt)
	end)
end)
