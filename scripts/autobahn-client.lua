#!/usr/bin/env lua5.4
--- Autobahn|Testsuite echo driver for wsbeat (the "testee" client).
--
-- Usage (from the repository root, with build/wsbeat/core.so built):
--
--   LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./build/?.so;;" \
--     lua5.4 scripts/autobahn-client.lua ws://127.0.0.1:9001 [ca_file]
--
-- Runs the standard Autobahn client flow against a running fuzzingserver:
-- /getCaseCount, then for each case i /getCaseInfo (for the case id and the
-- log) and /runCase?case=i&agent=AGENT (echo every message back with the same
-- kind until the connection closes), then /updateReports?agent=AGENT.
-- scripts/autobahn.sh starts the fuzzingserver and calls this script.
--
-- Environment (all optional):
--   AUTOBAHN_AGENT        agent name in the reports (default "wsbeat")
--   AUTOBAHN_CASE_TIMEOUT seconds one case may take before the driver gives
--                         up on it, closes it and goes on (default 120)
--   AUTOBAHN_COMPRESSION  "auto" (default: offer permessage-deflate only for
--                         cases 12.x and 13.x), "always" or "never"
--   AUTOBAHN_FIRST, AUTOBAHN_LAST  run only case numbers FIRST..LAST (the
--                         fuzzingserver keeps its results between runs, so a
--                         driver that died can be restarted after the case
--                         that killed it; scripts/autobahn.sh does that)
--   AUTOBAHN_NO_UPDATE=1  do not call /updateReports at the end
--   AUTOBAHN_VERBOSE=1    route wsbeat's/libwebsockets' log lines to stderr
local wsbeat = require "wsbeat"

local base = arg[1] or "ws://127.0.0.1:9001"
local ca_file = arg[2]
local agent = os.getenv("AUTOBAHN_AGENT") or "wsbeat"
local case_timeout = tonumber(os.getenv("AUTOBAHN_CASE_TIMEOUT") or "") or 120
local compression_mode = os.getenv("AUTOBAHN_COMPRESSION") or "auto"
base = base:gsub("/+$", "")

if os.getenv("AUTOBAHN_VERBOSE") == "1" then wsbeat.log("stderr", "info") end

local MiB = 1024 * 1024

local function log(fmt, ...)
	io.stderr:write(string.format(fmt, ...), "\n")
	io.stderr:flush()
end

local function options(extra)
	local o = {
		reconnect = false,
		heartbeat = false,
		connect_timeout = 15,
		close_timeout = 5,
		max_message_size = 64 * MiB,
		send_buffer = 64 * MiB,
	}
	if ca_file then o.tls = { ca_file = ca_file } end
	for k, v in pairs(extra or {}) do o[k] = v end
	return o
end

-- Run one connection to completion (state "closed") within `timeout`
-- seconds; returns the "closed" info table (or nil) and whether it timed out.
local function drive(ws, timeout, last)
	if wsbeat.run(timeout) then return last(), false end
	-- timed out: close it (goes "closing", then "closed" after close_timeout)
	pcall(ws.close, ws)
	if not wsbeat.run(10) then
		log("  driver: client still not closed 10 s after close()")
	end
	return last(), true
end

-- Connect to `path`, collect text messages, return them (and the close info).
local function fetch_text(path, timeout)
	local got, closed = {}, nil
	local ws = wsbeat.connect(base .. path, options({
		on_message = function(_, data) got[#got + 1] = data end,
		on_state = function(_, state, info)
			if state == "closed" then closed = info end
		end,
	}))
	local _, timed_out = drive(ws, timeout or 30, function() return closed end)
	return got, closed, timed_out
end

local function url_escape(s)
	return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local got, closed = fetch_text("/getCaseCount")
local count = tonumber(got[1] or "")
if not count then
	log("autobahn-client: could not read the case count from %s/getCaseCount (%s)",
		base, closed and closed.reason or "no answer")
	os.exit(2)
end
local first = tonumber(os.getenv("AUTOBAHN_FIRST") or "") or 1
local last = tonumber(os.getenv("AUTOBAHN_LAST") or "") or count
if last > count then last = count end
log("autobahn-client: %d cases at %s, running %d..%d as agent '%s'", count, base, first, last, agent)

local hung = {}
local t_all = os.time()
for i = first, last do
	-- case id (for the log and to decide on compression)
	local info = fetch_text("/getCaseInfo?case=" .. i)
	local id = info[1] and info[1]:match('"id"%s*:%s*"([^"]*)"') or "?"
	local compress = compression_mode == "always"
		or (compression_mode == "auto" and (id:match("^12%.") or id:match("^13%.")) ~= nil)

	-- scripts/autobahn.sh reads this line to restart after a crash
	log("running case %d/%d [%s]", i, count, id)
	local n_in, bytes_in, send_errors, first_send_error = 0, 0, 0, nil
	local closed_info
	local t0 = os.clock()
	local ws = wsbeat.connect(base .. "/runCase?case=" .. i .. "&agent=" .. url_escape(agent), options({
		compression = compress,
		on_message = function(c, data, kind)
			n_in = n_in + 1
			bytes_in = bytes_in + #data
			local ok, err = c:send(data, kind)
			if not ok then
				send_errors = send_errors + 1
				first_send_error = first_send_error or err
			end
		end,
		on_state = function(_, state, si)
			if state == "closed" then closed_info = si end
		end,
	}))
	local started = os.time()
	local _, timed_out = drive(ws, case_timeout, function() return closed_info end)
	local ci = closed_info or {}
	log("case %d/%d [%s]%s: %d msgs / %d bytes echoed, %s%s (cause=%s code=%s) %ds wall %.1fs cpu%s",
		i, count, id, compress and " pmd" or "", n_in, bytes_in,
		closed_info and "closed" or "NOT CLOSED",
		timed_out and " AFTER TIMEOUT" or "",
		tostring(ci.cause), tostring(ci.code), os.time() - started, os.clock() - t0,
		send_errors > 0 and (" send errors: " .. send_errors .. " (" .. tostring(first_send_error) .. ")") or "")
	if timed_out then hung[#hung + 1] = id end
end

if os.getenv("AUTOBAHN_NO_UPDATE") == "1" then os.exit(0) end
-- The server records a case when its side of the connection has closed,
-- which can be up to its 1 s close timer after our side did: wait that
-- out, or a last case that ended cleanly is missing from the report.
os.execute("sleep 1.5")
local _, uclosed, utimeout = fetch_text("/updateReports?agent=" .. url_escape(agent), 300)
log("autobahn-client: updateReports %s (%s); total %ds",
	utimeout and "TIMED OUT" or "done", uclosed and uclosed.reason or "?", os.time() - t_all)
if #hung > 0 then
	log("autobahn-client: cases that hit the per-case timeout: %s", table.concat(hung, " "))
end
