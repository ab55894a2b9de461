--- wsbeat.options: the options of wsbeat.connect, checked and completed.
-- Pure Lua, no C core: validate() turns what the user passed into the
-- per-client table the core reads, with every default filled in, so the
-- defaults live here and nowhere else.
local PROXY = require "wsbeat.proxy"

local type, pairs, ipairs, error, tostring, setmetatable = type, pairs, ipairs, error, tostring, setmetatable
local math_huge = math.huge
-- (5.1, 5.2, LuaJIT: no integer subtype; the checks below then rest on
-- the value alone)
local math_type = math.type or function() return nil end
local table_concat = table.concat
local string_format, string_find = string.format, string.find
-- (utf8.len is 5.3+; before, the core's validator, required only when
-- used, so this module still loads without the core)
local utf8_len = utf8 and utf8.len
local function utf8_valid(s)
	if utf8_len then return utf8_len(s) ~= nil end
	return require("wsbeat.core").utf8_valid(s)
end

local M = {}

--- Defaults for every option of wsbeat.connect (read-only in spirit: copy
-- before changing).  wsbeat.defaults is this very table.
M.defaults = {
	connect_timeout = 10,
	close_timeout = 3,
	heartbeat = { interval = 20, timeout = 20, mode = "ping" },
	reconnect = { delay = 1, max_delay = 30, factor = 2, jitter = 0.5,
		min_uptime = 5, max_attempts = math_huge },
	max_message_size = 16 * 1024 * 1024,
	max_queue = 256,
	send_buffer = 1024 * 1024,
	compression = false,
}

-- Not in M.defaults, whose fields users see and may iterate: tls was never
-- one of them.  Verification is on unless the user turns it off.
local TLS_VERIFY = true

-- Option errors travel as a table to connect(), which raises them at the
-- caller's line whatever the depth of the check that failed.
local OptionError = {}
OptionError.__tostring = function(e) return e.msg end -- for callers without connect()'s pcall
M.OptionError = OptionError

local function raise(msg)
	error(setmetatable({ msg = msg }, OptionError), 0)
end

local function opterr(key, msg)
	raise(string_format("option '%s': %s", key, msg))
end

local function expect(key, v, t)
	if type(v) ~= t then
		opterr(key, string_format("expected %s, got %s", t, type(v)))
	end
end

local function positive(key, v, allow_zero)
	expect(key, v, "number")
	if v ~= v or v == math_huge or (allow_zero and v < 0) or (not allow_zero and v <= 0) then
		opterr(key, allow_zero and "expected a finite number >= 0" or "expected a finite number > 0")
	end
	return v
end

local function count(key, v)
	expect(key, v, "number")
	if math_type(v) ~= "integer" and (v ~= v or v % 1 ~= 0 or v == math_huge) then
		opterr(key, "expected a positive integer")
	end
	if v < 1 then opterr(key, "expected a positive integer") end
	return v
end

local function clean_string(key, v)
	expect(key, v, "string")
	if string_find(v, "[%z\r\n]") then
		opterr(key, "must not contain NUL, CR or LF")
	end
	return v
end

local function check_keys(key, t, allowed)
	for k in pairs(t) do
		if not allowed[k] then
			opterr(key, string_format("unknown field '%s'", tostring(k)))
		end
	end
end

local TOKEN = "^[!#$%%&'*+%-.^_`|~%w]+$"
local RESERVED_HEADERS = {
	host = true, upgrade = true, connection = true, ["sec-websocket-key"] = true,
	["sec-websocket-version"] = true, ["sec-websocket-protocol"] = true,
	["sec-websocket-extensions"] = true, origin = true,
}

--- A headers table as the flat list {name, value, ...} the core sends.
-- A bad table calls fail(message) and returns what it returns: connect()
-- raises through it, an attempt's headers function only reports.
---@param h any
---@param fail fun(msg: string): any
---@return string[]|any
function M.header_list(h, fail)
	if type(h) ~= "table" then
		return fail("expected a table of headers, got " .. type(h))
	end
	local list = {}
	for k, v in pairs(h) do
		if type(k) ~= "string" or not string_find(k, TOKEN) then
			return fail("invalid header name '" .. tostring(k) .. "'")
		end
		if RESERVED_HEADERS[k:lower()] then
			return fail("header '" .. k .. "' is set by wsbeat itself")
		end
		if type(v) == "number" then v = tostring(v) end
		if type(v) ~= "string" or string_find(v, "[%z\r\n]") then
			return fail("invalid value for header '" .. k .. "'")
		end
		list[#list + 1] = k
		list[#list + 1] = v
	end
	return list
end
local header_list = M.header_list

local function sub_table(key, v, defaults, fields)
	if v == false then return false end
	if v == true or v == nil then v = {} end
	expect(key, v, "table")
	check_keys(key, v, fields)
	local r = {}
	for k, d in pairs(defaults) do r[k] = d end
	for k, x in pairs(v) do r[k] = x end
	return r
end

-- One checker per option: value (and the defaults table in use) -> the
-- value the core reads.  scripts/check-api.lua lists the options from the
-- `OPTION.name =` lines of this file.
local OPTION = {}

OPTION.on_message = function(v) expect("on_message", v, "function") return v end
OPTION.on_state = function(v) expect("on_state", v, "function") return v end
OPTION.on_error = function(v) expect("on_error", v, "function") return v end
OPTION.origin = function(v) return clean_string("origin", v) end
OPTION.connect_timeout = function(v) return positive("connect_timeout", v) end
OPTION.close_timeout = function(v) return positive("close_timeout", v) end
OPTION.max_message_size = function(v) return count("max_message_size", v) end
OPTION.max_queue = function(v) return count("max_queue", v) end
OPTION.send_buffer = function(v) return count("send_buffer", v) end
OPTION.compression = function(v) expect("compression", v, "boolean") return v end

OPTION.protocols = function(v)
	if type(v) == "string" then v = { v } end
	expect("protocols", v, "table")
	if #v == 0 then opterr("protocols", "expected a non-empty list of names") end
	local seen = {}
	for i, p in ipairs(v) do
		if type(p) ~= "string" or not string_find(p, TOKEN) then
			opterr("protocols", string_format("entry %d is not a valid subprotocol name", i))
		end
		if seen[p] then opterr("protocols", "duplicate name '" .. p .. "'") end
		seen[p] = true
	end
	return table_concat(v, ", ")
end

OPTION.proxy = function(v)
	if v == false or type(v) == "function" then return v end
	expect("proxy", v, "string")
	local p, err = PROXY.parse(v)
	if not p then opterr("proxy", err) end
	if p.scheme == "https" then
		opterr("proxy", "https:// proxies (TLS to the proxy) are not supported; use http:// "
			.. "(TLS to the server still runs end to end through it) or socks5h://")
	end
	return p
end

OPTION.headers = function(v)
	if type(v) == "function" then return v end
	header_list(v, function(msg) opterr("headers", msg) end)
	return v
end

OPTION.tls = function(v)
	expect("tls", v, "table")
	local fields = { verify = "boolean", ca_file = "string", ca_path = "string",
		cert_file = "string", key_file = "string", server_name = "string" }
	check_keys("tls", v, fields)
	local r = {}
	for k, t in pairs(fields) do
		if v[k] ~= nil then
			if type(v[k]) ~= t then
				opterr("tls", string_format("field '%s': expected %s, got %s", k, t, type(v[k])))
			end
			if t == "string" and (v[k] == "" or string_find(v[k], "%z")) then
				opterr("tls", string_format("field '%s': expected a non-empty string without NUL", k))
			end
			r[k] = v[k]
		end
	end
	if r.key_file and not r.cert_file then
		opterr("tls", "field 'key_file' needs 'cert_file'")
	end
	if r.server_name and not string_find(r.server_name, "^[%w%.%-_:]+$") then
		opterr("tls", "field 'server_name': invalid host name")
	end
	if r.verify == nil then r.verify = TLS_VERIFY end
	return r
end

OPTION.heartbeat = function(v, defaults)
	local hb = sub_table("heartbeat", v, defaults.heartbeat,
		{ interval = true, timeout = true, mode = true, message = true })
	if not hb then return false end
	positive("heartbeat.interval", hb.interval)
	positive("heartbeat.timeout", hb.timeout)
	if hb.mode ~= "ping" and hb.mode ~= "message" then
		opterr("heartbeat.mode", "expected 'ping' or 'message'")
	end
	if hb.message ~= nil then expect("heartbeat.message", hb.message, "string") end
	if hb.mode == "message" then
		-- no default text: what a server answers is the server's protocol
		if hb.message == nil then
			opterr("heartbeat.message", "required with mode = 'message' (the text to send as the probe)")
		end
		if not utf8_valid(hb.message) then
			opterr("heartbeat.message", "must be valid UTF-8")
		end
	end
	return hb
end

OPTION.reconnect = function(v, defaults)
	local rc = sub_table("reconnect", v, defaults.reconnect,
		{ delay = true, max_delay = true, factor = true, jitter = true,
			min_uptime = true, max_attempts = true, retry = true })
	if not rc then return false end
	positive("reconnect.delay", rc.delay, true)
	positive("reconnect.max_delay", rc.max_delay, true)
	if rc.max_delay < rc.delay then
		-- a longer delay than the default cap raises the cap with it; two
		-- explicit values that contradict each other are a mistake
		if type(v) == "table" and v.max_delay ~= nil then
			opterr("reconnect.max_delay", "must be >= reconnect.delay")
		end
		rc.max_delay = rc.delay
	end
	positive("reconnect.factor", rc.factor)
	if rc.factor < 1 then opterr("reconnect.factor", "expected a number >= 1") end
	positive("reconnect.jitter", rc.jitter, true)
	if rc.jitter > 1 then opterr("reconnect.jitter", "expected a number in [0, 1]") end
	positive("reconnect.min_uptime", rc.min_uptime, true)
	if rc.max_attempts ~= math_huge then count("reconnect.max_attempts", rc.max_attempts) end
	if rc.retry ~= nil then expect("reconnect.retry", rc.retry, "function") end
	return rc
end

--- Check the options of wsbeat.connect and complete them from the
-- defaults: the per-client table the core reads.  Raises an OptionError
-- table ({ msg = "..." }, metatable M.OptionError) on a bad option.
-- `defaults` is the table wsbeat.defaults holds when connect() runs
-- (M.defaults unless the user replaced it).
---@param options table|nil
---@param defaults? table
---@return table
function M.validate(options, defaults)
	defaults = defaults or M.defaults
	local o = {}
	for k, d in pairs(defaults) do o[k] = d end
	o.heartbeat, o.reconnect = nil, nil
	if options ~= nil then
		if type(options) ~= "table" then
			raise("expected a table of options, got " .. type(options))
		end
		for k, v in pairs(options) do
			local f = OPTION[k]
			if not f then
				raise(string_format("unknown option '%s'", tostring(k)))
			end
			o[k] = f(v, defaults)
		end
	end
	if o.heartbeat == nil then o.heartbeat = OPTION.heartbeat(nil, defaults) end
	if o.reconnect == nil then o.reconnect = OPTION.reconnect(nil, defaults) end
	-- the core has no TLS defaults of its own
	if o.tls == nil then o.tls = { verify = TLS_VERIFY } end
	o.has_on_message = o.on_message ~= nil
	return o
end

------------------------------------------------------------------ servers

--- Defaults of wsbeat.listen's own options (the per-connection ones come
-- from M.defaults, as for clients).
M.server_defaults = {
	host = "127.0.0.1",
	handshake_timeout = 10,
	max_connections = 10000,
	on_full = "refuse",
}

local SERVER_OPTION = {}
for _, k in ipairs { "on_message", "on_state", "on_error", "close_timeout",
	"max_message_size", "max_queue", "send_buffer", "compression", "protocols",
	"heartbeat" } do
	SERVER_OPTION[k] = OPTION[k]
end
SERVER_OPTION.on_open = function(v) expect("on_open", v, "function") return v end
SERVER_OPTION.on_upgrade = function(v) expect("on_upgrade", v, "function") return v end
SERVER_OPTION.host = function(v)
	expect("host", v, "string")
	if v == "" or string_find(v, "[%z%s/]") then opterr("host", "expected an address or a host name") end
	return v
end
SERVER_OPTION.port = function(v)
	expect("port", v, "number")
	if math_type(v) ~= "integer" and v % 1 ~= 0 or v < 0 or v > 65535 then
		opterr("port", "expected an integer in 0..65535 (0: any free port)")
	end
	return v
end
SERVER_OPTION.handshake_timeout = function(v) return positive("handshake_timeout", v) end
SERVER_OPTION.max_connections = function(v) return count("max_connections", v) end
SERVER_OPTION.on_full = function(v)
	if v ~= "refuse" and v ~= "close" then opterr("on_full", "expected 'refuse' or 'close'") end
	return v
end
SERVER_OPTION.tls = function(v)
	expect("tls", v, "table")
	local fields = { cert_file = "string", key_file = "string", ca_file = "string",
		verify_client = "boolean" }
	check_keys("tls", v, fields)
	for k, t in pairs(fields) do
		if v[k] ~= nil and type(v[k]) ~= t then
			opterr("tls", string_format("field '%s': expected %s, got %s", k, t, type(v[k])))
		end
		if t == "string" and v[k] ~= nil and (v[k] == "" or string_find(v[k], "%z")) then
			opterr("tls", string_format("field '%s': expected a non-empty string without NUL", k))
		end
	end
	if not v.cert_file or not v.key_file then
		opterr("tls", "a server needs 'cert_file' and 'key_file'")
	end
	if v.verify_client and not v.ca_file then
		opterr("tls", "field 'verify_client' needs 'ca_file' (the CA that signs client certificates)")
	end
	for _, k in ipairs { "cert_file", "key_file", "ca_file" } do
		if v[k] then
			local f = io.open(v[k], "r")
			if not f then opterr("tls", string_format("field '%s': cannot read '%s'", k, v[k])) end
			f:close()
		end
	end
	return { cert_file = v.cert_file, key_file = v.key_file, ca_file = v.ca_file,
		verify_client = v.verify_client or false }
end

--- Check the options of wsbeat.listen and complete them: the server
-- table the core reads (every per-connection field filled in from
-- `defaults`, as validate() does for a client).
---@param options any
---@param defaults? table
---@return table
function M.validate_server(options, defaults)
	defaults = defaults or M.defaults
	if type(options) ~= "table" then
		raise("expected a table of options, got " .. type(options))
	end
	local o = {}
	for k, d in pairs(defaults) do o[k] = d end
	for k, d in pairs(M.server_defaults) do o[k] = d end
	o.heartbeat, o.reconnect = nil, false
	for k, v in pairs(options) do
		local f = SERVER_OPTION[k]
		if not f then
			raise(string_format("unknown option '%s'", tostring(k)))
		end
		o[k] = f(v, defaults)
	end
	if options.port == nil then opterr("port", "required (0 picks a free port)") end
	if o.heartbeat == nil then o.heartbeat = OPTION.heartbeat(nil, defaults) end
	o.connect_timeout = o.handshake_timeout -- (the core reads it for every connection)
	o.has_on_message = o.on_message ~= nil
	return o
end

return M
