--- wsbeat.proxy: which proxy a connection attempt goes through.
-- Pure functions, no I/O: parse a proxy URL, and choose the proxy for a
-- target from the `proxy` option or from the environment, the way curl and
-- python websockets read it (wss_proxy/https_proxy/all_proxy for wss://,
-- ws_proxy/http_proxy/all_proxy for ws://, lower case first, then upper
-- case; no_proxy/NO_PROXY lists the hosts reached directly).
local type, tonumber, ipairs = type, tonumber, ipairs
local string_format, string_find, string_lower, string_char =
	string.format, string.find, string.lower, string.char
local math_floor = math.floor

local M = {}

local DEFAULT_PORT = { http = 80, https = 443, socks5 = 1080, socks5h = 1080 }

---------------------------------------------------------------- addresses

-- "a.b.c.d" -> { a, b, c, d } or nil
local function parse_ipv4(s)
	local parts = { s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$") }
	if #parts ~= 4 then return nil end
	local t = {}
	for i, p in ipairs(parts) do
		-- no leading zeros: "010" is octal to some resolvers
		if #p > 3 or (#p > 1 and p:sub(1, 1) == "0") then return nil end
		t[i] = tonumber(p)
		if t[i] > 255 then return nil end
	end
	return t
end

-- IPv6 text (no brackets) -> 16 bytes as a list of numbers, or nil
local function parse_ipv6(s)
	if not string_find(s, ":", 1, true) or string_find(s, "[^%x:%.]") then return nil end
	local head, tail = s, nil
	local dc = string_find(s, "::", 1, true)
	if dc then
		head, tail = s:sub(1, dc - 1), s:sub(dc + 2)
		if string_find(tail, "::", 1, true) then return nil end
	end
	local function groups(part)
		local out = {}
		if part == "" then return out end
		local items = {}
		for g in (part .. ":"):gmatch("([^:]*):") do items[#items + 1] = g end
		for i, g in ipairs(items) do
			if i == #items and string_find(g, ".", 1, true) then
				local v4 = parse_ipv4(g)
				if not v4 then return nil end
				out[#out + 1] = v4[1] * 256 + v4[2]
				out[#out + 1] = v4[3] * 256 + v4[4]
			else
				if not g:match("^%x%x?%x?%x?$") then return nil end
				out[#out + 1] = tonumber(g, 16)
			end
		end
		return out
	end
	local h = groups(head)
	local t = tail and groups(tail) or {}
	if not h or not t then return nil end
	local n = #h + #t
	if (dc and n > 7) or (not dc and n ~= 8) then return nil end
	local all = {}
	for _, g in ipairs(h) do all[#all + 1] = g end
	for _ = 1, 8 - n do all[#all + 1] = 0 end
	for _, g in ipairs(t) do all[#all + 1] = g end
	local bytes = {}
	for _, g in ipairs(all) do
		bytes[#bytes + 1] = math_floor(g / 256)
		bytes[#bytes + 1] = g % 256
	end
	return bytes
end

-- an address literal -> list of bytes (4 or 16), or nil for a name
local function ip_bytes(host)
	return parse_ipv4(host) or parse_ipv6(host)
end
M.ip_bytes = ip_bytes

local function prefix_match(a, b, bits)
	if #a ~= #b then return false end
	for i = 1, #a do
		if bits <= 0 then return true end
		if bits >= 8 then
			if a[i] ~= b[i] then return false end
		else
			local div = 2 ^ (8 - bits)
			if math_floor(a[i] / div) ~= math_floor(b[i] / div) then return false end
		end
		bits = bits - 8
	end
	return true
end

---------------------------------------------------------------- URLs

local function unescape(s)
	return (s:gsub("%%(%x%x)", function(h) return string_char(tonumber(h, 16)) end))
end

--- Parse a proxy URL: `http://[user:pass@]host[:port]`, `https://...`,
-- `socks5://...`, `socks5h://...`; no scheme means http (as curl reads it).
-- Returns { scheme, host, port, user, password } or nil, message.
function M.parse(url)
	if type(url) ~= "string" then return nil, "expected a URL string" end
	if url == "" then return nil, "empty proxy URL" end
	if string_find(url, "[%z%s]") then return nil, "proxy URL contains a space or control character" end
	local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
	if not scheme then
		scheme, rest = "http", url
	end
	scheme = string_lower(scheme)
	if not DEFAULT_PORT[scheme] then
		return nil, string_format("unsupported proxy scheme '%s' (expected http, https, socks5 or socks5h)", scheme)
	end
	rest = rest:gsub("/$", "")
	if string_find(rest, "[/?#]") then return nil, "a proxy URL has no path, query or fragment" end
	local user, password
	local at = rest:match("^.*()@")
	if at then
		local info = rest:sub(1, at - 1)
		rest = rest:sub(at + 1)
		local u, p = info:match("^([^:]*):(.*)$")
		user, password = unescape(u or info), p and unescape(p) or nil
	end
	local host, port
	if rest:sub(1, 1) == "[" then
		host, port = rest:match("^%[([^%]]+)%](.*)$")
		if not host or not parse_ipv6(host) then return nil, "invalid IPv6 address in proxy URL" end
	else
		host, port = rest:match("^([^:]*)(.*)$")
	end
	if host == "" then return nil, "proxy URL has no host" end
	if port == "" then
		port = DEFAULT_PORT[scheme]
	else
		port = port:match("^:(%d+)$")
		port = port and tonumber(port)
		if not port or port < 1 or port > 65535 then return nil, "invalid port in proxy URL" end
	end
	return { scheme = scheme, host = host, port = port, user = user, password = password }
end

--- The proxy as it may be shown: scheme://host:port, never the password.
function M.display(p)
	local host = string_find(p.host, ":", 1, true) and "[" .. p.host .. "]" or p.host
	return string_format("%s://%s:%d", p.scheme, host, p.port)
end

---------------------------------------------------------------- no_proxy

--- Does the no_proxy list `list` (comma separated) cover host[:port]?
-- Entries: `*`; a host name, matching itself and every name below it (with
-- or without a leading dot); an IP address; a CIDR range; each optionally
-- with `:port` (then only that port matches).
function M.bypass(list, host, port)
	if not list or list == "" then return false end
	host = string_lower(host):gsub("%.$", "")
	local hbytes = ip_bytes(host)
	for entry in list:gmatch("[^,]+") do
		entry = string_lower(entry:match("^%s*(.-)%s*$"))
		if entry == "*" then return true end
		if entry ~= "" then
			-- an optional :port ([v6]:port, name:port, v4:port)
			local eport
			local b, p = entry:match("^%[([^%]]+)%]:?(%d*)$")
			if b then
				entry, eport = b, tonumber(p)
			elseif not parse_ipv6(entry:match("^([^/]*)") or "") then
				local n, p2 = entry:match("^(.-):(%d+)$")
				if n then entry, eport = n, tonumber(p2) end
			end
			if not eport or eport == port then
				local net, bits = entry:match("^(.-)/(%d+)$")
				if net then
					local nb = ip_bytes(net)
					bits = tonumber(bits)
					if nb and hbytes and bits <= #nb * 8 and prefix_match(hbytes, nb, bits) then
						return true
					end
				else
					local eb = ip_bytes(entry)
					if eb then
						if hbytes and prefix_match(hbytes, eb, #eb * 8) then return true end
					elseif not hbytes then
						entry = entry:gsub("^%.", ""):gsub("%.$", "")
						if host == entry or host:sub(-(#entry + 1)) == "." .. entry then
							return true
						end
					end
				end
			end
		end
	end
	return false
end

---------------------------------------------------------------- choice

local ENV = {
	wss = { "wss_proxy", "https_proxy", "all_proxy" },
	ws = { "ws_proxy", "http_proxy", "all_proxy" },
}

--- The proxy for one attempt to scheme://host:port.
-- option: the `proxy` option (nil = environment, false = direct, or an
-- already parsed table); getenv defaults to os.getenv.
-- Returns the parsed proxy table, or nil for a direct connection; or
-- false, message when the environment names a proxy that is not valid
-- (the variable is named in the message).
function M.choose(option, scheme, host, port, getenv)
	if option == false then return nil end
	if type(option) == "table" then return option end
	getenv = getenv or os.getenv
	local function env(name)
		local v = getenv(name)
		if v == nil or v == "" then v = getenv(name:upper()) end
		if v == "" then v = nil end
		return v
	end
	local value, from
	for _, name in ipairs(ENV[scheme] or {}) do
		value = env(name)
		if value then
			from = name
			break
		end
	end
	if not value then return nil end
	if M.bypass(env("no_proxy"), host, port) then return nil end
	local p, err = M.parse(value)
	if not p then
		return false, string_format("%s: %s", from, err)
	end
	return p
end

M.default_port = function(scheme) return DEFAULT_PORT[scheme] end

return M
