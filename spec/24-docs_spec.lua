-- Every ```lua block of README.md and docs/**/*.md runs for real, against a
-- local server, or says why it cannot. The docs are read when this spec
-- runs, so a doc edit is checked at once.
--
-- The marker is an HTML comment on the last non-blank line before the fence
-- (invisible on GitHub):
--
--   <!-- run: prelude=NAME -->
--       The block runs as a program in a fresh `timeout 30 lua5.4` through
--       spec/fixtures/docs_run.lua, against a python echo server started
--       here (spec/helper.lua). Prelude NAME, defined in that fixture, gives
--       the block its variables (`url`, `ws`, `on_message`, ...), points
--       every ws:// or wss:// URL the block connects to at the local server
--       and makes the run end (its clients are closed after a few
--       messages). CHECKS[NAME] below says what the run must show: the
--       messages and close codes the server logged, what the clients
--       received, and that every client is closed when the block returns.
--   <!-- not run: REASON -->
--       A block that is not run (it needs a proxy, it is a listing, ...):
--       it must still be valid Lua (it is compiled, not run), so a typo in
--       it fails here too.
--
-- A ```lua block without a marker fails, naming its file and line; so does
-- a marker that is malformed or not followed by a ```lua block.
local H = require "helper"

local RUNNER = "spec/fixtures/docs_run.lua"

------------------------------------------------------------------ the docs

local function doc_files()
	local list = { "README.md" }
	local found = H.sh(("cd %s && find docs -name '*.md' -type f | LC_ALL=C sort"):format(H.quote(H.ROOT)))
	for f in found:gmatch("[^\n]+") do list[#list + 1] = f end
	return list
end

-- ``` or ~~~ (3 or more), at most 3 spaces of indent: char, run length, info
local function fence(line)
	local indent, run, info = line:match("^( *)(```+)(.*)$")
	if not run then indent, run, info = line:match("^( *)(~~~+)(.*)$") end
	if not run or #indent > 3 then return nil end
	if run:sub(1, 1) == "`" and info:find("`", 1, true) then return nil end
	return run:sub(1, 1), #run, info
end

local function parse_marker(text)
	local body = text:match("^%s*<!%-%-%s*(.-)%s*%-%->%s*$")
	if not body then return nil end
	local reason = body:match("^not run:%s*(.*)$")
	if reason then
		if reason == "" then return { bad = "'not run:' needs a reason" } end
		return { kind = "not run", reason = reason }
	end
	local opts = body:match("^run:%s*(.*)$")
	if not opts then
		if body:match("^not[%s_-]*run") or body:match("^run") then
			return { bad = "malformed marker '" .. text:gsub("^%s+", "") .. "'" }
		end
		return nil -- some other comment
	end
	local m = { kind = "run" }
	for word in opts:gmatch("%S+") do
		local k, v = word:match("^([%w_]+)=([%w_%-]+)$")
		if k ~= "prelude" then
			return { bad = ("unknown or malformed option '%s' in run marker (expected prelude=NAME)"):format(word) }
		end
		m.prelude = v
	end
	if not m.prelude then return { bad = "run marker without prelude=NAME" } end
	return m
end

-- Every ```lua block: { file, line (of the opening fence), code, marker } and
-- every problem: { file, line, msg }.
local function scan(file)
	local text = assert(H.read_file(H.ROOT .. "/" .. file), "cannot read " .. file)
	local lines = {}
	for l in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
	local blocks, problems = {}, {}
	local pending, pending_line -- the marker seen last, waiting for its fence
	local i = 1
	while i <= #lines do
		local l = lines[i]
		local ch, len, info = fence(l)
		if ch then
			local lang = (info:match("^%s*(%S*)") or ""):lower()
			local close = i + 1
			while close <= #lines do
				local c2, len2, info2 = fence(lines[close])
				if c2 == ch and len2 >= len and info2:match("^%s*$") then break end
				close = close + 1
			end
			if lang == "lua" then
				local code = table.concat(lines, "\n", i + 1, close - 1)
				local b = { file = file, line = i, code = code .. "\n", marker = pending }
				blocks[#blocks + 1] = b
				if pending and pending.bad then
					problems[#problems + 1] = { file = file, line = i, block = b,
						msg = ("%s:%d: %s"):format(file, pending_line, pending.bad) }
				end
			elseif pending then
				problems[#problems + 1] = { file = file, line = pending_line,
					msg = ("%s:%d: marker before a ```%s block, not a ```lua one"):format(file, pending_line, lang) }
			end
			pending = nil
			i = close + 1
		else
			if not l:match("^%s*$") then
				local m = parse_marker(l)
				if pending then
					problems[#problems + 1] = { file = file, line = pending_line,
						msg = ("%s:%d: marker not followed by a ```lua block"):format(file, pending_line) }
				end
				pending, pending_line = m, i
			end
			i = i + 1
		end
	end
	if pending then
		problems[#problems + 1] = { file = file, line = pending_line,
			msg = ("%s:%d: marker not followed by a ```lua block"):format(file, pending_line) }
	end
	return blocks, problems
end

------------------------------------------------------------------ checks

-- Server-side view: connections in accept order, each with its path,
-- headers, messages (data) and close event.
local function connections(srv, n)
	H.run_until(function() return #srv:events("close") >= n end, 5,
		("%d close events in the server's log"):format(n))
	local by_id, list = {}, {}
	for _, e in ipairs(srv:events()) do
		if e.event == "connect" then
			by_id[e.id] = { path = e.path, headers = e.headers, messages = {} }
			list[#list + 1] = by_id[e.id]
		elseif e.event == "message" and by_id[e.id] then
			local m = by_id[e.id].messages
			m[#m + 1] = e.data
		elseif e.event == "close" and by_id[e.id] then
			by_id[e.id].close = e
		end
	end
	return list
end

-- What the harness printed about client k.
local function client_got(out, k)
	local l = {}
	for data in out:gmatch("docs: client " .. k .. " got ([^\n]*)") do l[#l + 1] = data end
	return l
end

local function client_states(out)
	local states = {}
	for k, state in out:gmatch("docs: at end client (%d+) (%a+) ") do states[tonumber(k)] = state end
	return states
end

local function docs_msgs(k, n)
	local l = {}
	for i = 1, n do l[i] = ("docs %d.%d"):format(k, i) end
	return l
end

-- Every client sent "docs k.1..n", got their echoes and was closed by the
-- harness (1000 "docs done") after them; returns the connections.
local function check_echoes(r, nclients, n)
	local conns = connections(r.srv, nclients)
	assert.equal(nclients, #conns, r.out)
	local states = client_states(r.out)
	for k = 1, nclients do
		assert.equal("closed", states[k], "client " .. k .. " at the end:\n" .. r.out)
		assert.same(docs_msgs(k, n), client_got(r.out, k), r.out)
	end
	-- the server saw each client's messages on one connection, then its close
	local seen = {}
	for _, c in ipairs(conns) do
		local k = c.messages[1] and tonumber(c.messages[1]:match("^docs (%d+)%.1$"))
		assert.is_truthy(k, "unexpected messages on " .. c.path .. ": " .. table.concat(c.messages, ","))
		assert.is_nil(seen[k])
		seen[k] = true
		assert.same(docs_msgs(k, n), c.messages)
		assert.equal(1000, c.close.code, "close code the server saw; the run printed:\n" .. r.out)
		assert.equal("docs done", c.close.reason)
	end
	return conns
end

local CHECKS = {}

function CHECKS.feed(r)
	local conns = connections(r.srv, 1)
	assert.equal(1, #conns, r.out)
	local c = conns[1]
	assert.equal("/feed", c.path)                          -- wss://example.org/feed, pointed here
	assert.equal("Bearer docs-token", c.headers.authorization) -- the headers function ran
	assert.same({ '{"op":"subscribe"}' }, c.messages)         -- sent from on_state "open"
	assert.equal(1000, c.close.code, "close code the server saw; the run printed:\n" .. r.out)
	assert.equal("docs done", c.close.reason)
	assert.matches("state\topen\tconnected", r.out, 1, true)
	assert.matches("got\ttext\t18\trtt", r.out, 1, true)      -- its on_message ran on the echo
	assert.matches("state\tclosed\tclosed_by_user", r.out, 1, true)
	assert.equal("closed", client_states(r.out)[1], r.out)
end

function CHECKS.echo(r)
	local n = #client_states(r.out)
	assert.is_true(n >= 1, "the block made no client:\n" .. r.out)
	check_echoes(r, n, 3)
end

function CHECKS.loop_contract(r)
	check_echoes(r, 1, 3)
end

function CHECKS.cqueues(r)
	check_echoes(r, 2, 3)
	-- one client printed by the block's receive loop, the other by on_message
	local printed, by_callback = {}, {}
	for line in r.out:gmatch("[^\n]+") do
		local k = line:match("^docs (%d)%.%d$")
		if k then printed[#printed + 1] = line end
		local k2 = line:match("^docs: on_message docs (%d)%.%d$")
		if k2 then by_callback[#by_callback + 1] = line end
	end
	assert.equal(3, #printed, r.out)
	assert.equal(3, #by_callback, r.out)
	assert.are_not.equal(printed[1]:match("(%d)%."), by_callback[1]:match("docs (%d)%."))
end

function CHECKS.luv(r)
	check_echoes(r, 1, 3)
end

function CHECKS.select(r)
	local conns = connections(r.srv, 1)
	assert.equal(1, #conns)
	assert.same(docs_msgs(1, 3), conns[1].messages)
	assert.equal(1000, conns[1].close.code, "close code the server saw; the run printed:\n" .. r.out)
	assert.equal("docs done", conns[1].close.reason)
	-- every echo came back as a datagram that the block's loop handled
	local handled = {}
	for d in r.out:gmatch("docs: handle ([^\n]*)") do handled[#handled + 1] = d end
	assert.same({ "udp docs 1.1", "udp docs 1.2", "udp docs 1.3" }, handled)
	assert.equal("closed", client_states(r.out)[1], r.out)
end

function CHECKS.gameloop(r)
	local conns = connections(r.srv, 1)
	assert.equal(1, #conns)
	assert.same({ "move 1", "move 2", "move 3" }, conns[1].messages)
	-- the block's own ws:close()
	assert.equal(1000, conns[1].close.code, "close code the server saw; the run printed:\n" .. r.out)
	assert.equal("", conns[1].close.reason)
	assert.matches("docs: game x=6 moves=3 running=false", r.out, 1, true)
	assert.equal("closed", client_states(r.out)[1], r.out)
end

------------------------------------------------------------------ running

local function names()
	local l = {}
	for k in pairs(CHECKS) do l[#l + 1] = k end
	table.sort(l)
	return table.concat(l, ", ")
end

local function run_block(b, srv)
	local snippet = ("%s/docs-%s-%d.lua"):format(H.tmpdir(), b.file:gsub("[^%w]", "_"), b.line)
	local f = assert(io.open(snippet, "w"))
	f:write(b.code)
	f:close()
	local q = H.quote
	local out = H.sh(("cd %s && LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;' "
		.. "timeout %d lua5.4 %s %s %s %s %s %d </dev/null 2>&1; echo rc=$?")
		:format(q(H.ROOT), math.floor(30 * H.SLOW), q(RUNNER), q(b.marker.prelude), q(srv.base), q(snippet),
			q(b.file), b.line))
	os.remove(snippet)
	return { out = out, srv = srv }
end

describe("docs: every ```lua block", function()
	local problems_of = {}
	local all = {}
	for _, file in ipairs(doc_files()) do
		local blocks, problems = scan(file)
		for _, b in ipairs(blocks) do all[#all + 1] = b end
		for _, p in ipairs(problems) do
			if p.block then
				problems_of[p.block] = p.msg
			else
				it(p.msg:match("^[^:]+:%d+") .. " has a well-placed marker", function() error(p.msg, 0) end)
			end
		end
	end

	it("is found (README.md and docs/ have some)", function()
		assert.is_true(#all > 0)
	end)

	for _, b in ipairs(all) do
		local where = ("%s:%d"):format(b.file, b.line)
		local m = b.marker
		if problems_of[b] then
			it(where .. " has a valid marker", function() error(problems_of[b], 0) end)
		elseif not m then
			it(where .. " has a marker", function()
				error(("%s: ```lua block without a marker: put `<!-- run: prelude=NAME -->` "
					.. "(NAME one of: %s; see spec/fixtures/docs_run.lua) or `<!-- not run: REASON -->` "
					.. "on the line before it (see spec/24-docs_spec.lua)"):format(where, names()), 0)
			end)
		elseif m.kind == "not run" then
			it(where .. " compiles (not run: " .. m.reason .. ")", function()
				local f, err = (_G.loadstring or load)(b.code, "=" .. where)
				assert(f, err)
			end)
		else
			it(where .. " runs (prelude " .. m.prelude .. ")", function()
				local check = CHECKS[m.prelude]
				assert(check, ("%s: unknown prelude '%s' (known: %s)"):format(where, m.prelude, names()))
				local srv = H.server {}
				finally(function() srv:stop() end)
				local r = run_block(b, srv)
				if not r.out:find("rc=0\n$") then error(where .. " failed:\n" .. r.out, 0) end
				-- the block returned (rc=124 would be the timeout)
				assert.is_truthy(r.out:find("docs: end\n", 1, true), r.out)
				check(r)
			end)
		end
	end
end)
