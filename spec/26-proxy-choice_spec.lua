-- Which proxy an attempt goes through (lua/wsbeat/proxy.lua): URL parsing,
-- the environment's order, and no_proxy. Pure functions: the environment is
-- a table here, so every case is exact.
local P = require "wsbeat.proxy"

local function env(t)
	return function(name) return t[name] end
end

describe("proxy URLs", function()
	it("parse scheme, credentials, host and port, with defaults", function()
		assert.same({ scheme = "http", host = "proxy.corp", port = 3128, user = "u", password = "p w" },
			P.parse("http://u:p%20w@proxy.corp:3128"))
		assert.same({ scheme = "http", host = "proxy.corp", port = 80 }, P.parse("http://proxy.corp"))
		assert.same({ scheme = "http", host = "proxy.corp", port = 8080 }, P.parse("proxy.corp:8080"))
		assert.same({ scheme = "https", host = "p", port = 443 }, P.parse("HTTPS://p/"))
		assert.same({ scheme = "socks5", host = "::1", port = 1080 }, P.parse("socks5://[::1]"))
		assert.same({ scheme = "socks5h", host = "10.0.0.1", port = 9050, user = "a@b", password = "c:d" },
			P.parse("socks5h://a%40b:c:d@10.0.0.1:9050"))
		assert.same({ scheme = "http", host = "h", port = 1, user = "only" }, P.parse("http://only@h:1"))
	end)

	it("refuse what is not a proxy URL, saying why", function()
		assert.same({ nil, "unsupported proxy scheme 'ftp' (expected http, https, socks5 or socks5h)" },
			{ P.parse("ftp://h:1") })
		assert.same({ nil, "proxy URL has no host" }, { P.parse("http://:8080") })
		assert.same({ nil, "invalid port in proxy URL" }, { P.parse("http://h:0") })
		assert.same({ nil, "invalid port in proxy URL" }, { P.parse("http://h:65536") })
		assert.same({ nil, "invalid port in proxy URL" }, { P.parse("http://h:x") })
		assert.same({ nil, "a proxy URL has no path, query or fragment" }, { P.parse("http://h:1/path") })
		assert.same({ nil, "invalid IPv6 address in proxy URL" }, { P.parse("http://[zz]:1") })
		assert.same({ nil, "empty proxy URL" }, { P.parse("") })
		assert.same({ nil, "proxy URL contains a space or control character" }, { P.parse("http://h :1") })
	end)

	it("display never shows the password", function()
		assert.equal("http://proxy.corp:3128", P.display(P.parse("http://u:secret@proxy.corp:3128")))
		assert.equal("socks5h://[::1]:1080", P.display(P.parse("socks5h://u:secret@[::1]")))
	end)
end)

describe("the environment", function()
	local PX = "http://px:1"

	it("wss:// reads wss_proxy, https_proxy, all_proxy in that order, lower case first", function()
		local order = { "wss_proxy", "WSS_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY" }
		for i, name in ipairs(order) do
			local e = {}
			for j = i, #order do e[order[j]] = "http://" .. order[j]:lower() .. (order[j]:upper() == order[j] and "-up" or "") .. ":1" end
			local p = P.choose(nil, "wss", "example.org", 443, env(e))
			assert.equal(name:lower() .. (name:upper() == name and "-up" or ""), p.host, name)
		end
		assert.is_nil(P.choose(nil, "wss", "example.org", 443, env { http_proxy = PX, ws_proxy = PX }))
	end)

	it("ws:// reads ws_proxy, http_proxy, all_proxy in that order, lower case first", function()
		local order = { "ws_proxy", "WS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY" }
		for i, name in ipairs(order) do
			local e = {}
			for j = i, #order do e[order[j]] = "http://" .. order[j]:lower() .. (order[j]:upper() == order[j] and "-up" or "") .. ":1" end
			local p = P.choose(nil, "ws", "example.org", 80, env(e))
			assert.equal(name:lower() .. (name:upper() == name and "-up" or ""), p.host, name)
		end
		assert.is_nil(P.choose(nil, "ws", "example.org", 80, env { https_proxy = PX, wss_proxy = PX }))
	end)

	it("an empty variable counts as unset", function()
		assert.equal("b", P.choose(nil, "ws", "h", 80, env { ws_proxy = "", http_proxy = "http://b:1" }).host)
		assert.is_nil(P.choose(nil, "ws", "h", 80, env { http_proxy = "" }))
	end)

	it("proxy = false overrides the environment; a table is used as given", function()
		assert.is_nil(P.choose(false, "ws", "h", 80, env { http_proxy = PX }))
		local mine = P.parse("socks5://s:2")
		assert.equal(mine, P.choose(mine, "ws", "h", 80, env { http_proxy = PX }))
	end)

	it("a malformed variable is an error that names the variable", function()
		assert.same({ false, "https_proxy: unsupported proxy scheme 'gopher' (expected http, https, socks5 or socks5h)" },
			{ P.choose(nil, "wss", "h", 443, env { https_proxy = "gopher://x:1" }) })
	end)
end)

describe("no_proxy", function()
	local cases = {
		-- list, host, port, bypassed?
		{ "*", "anything.example", 80, true },
		{ "example.org", "example.org", 80, true },
		{ "example.org", "www.example.org", 80, true },
		{ "example.org", "badexample.org", 80, false },
		{ ".example.org", "example.org", 80, true },
		{ ".example.org", "a.b.example.org", 80, true },
		{ "EXAMPLE.org", "www.Example.ORG", 80, true },
		{ "example.org.", "www.example.org", 80, true },
		{ "other.org, example.org", "example.org", 80, true },
		{ " other.org ,  example.org ", "example.org", 80, true },
		{ "other.org", "example.org", 80, false },
		{ "127.0.0.1", "127.0.0.1", 80, true },
		{ "127.0.0.1", "127.0.0.2", 80, false },
		{ "10.0.0.0/8", "10.20.30.40", 80, true },
		{ "10.0.0.0/8", "11.0.0.1", 80, false },
		{ "192.168.1.0/24", "192.168.1.255", 80, true },
		{ "192.168.1.0/25", "192.168.1.200", 80, false },
		{ "0.0.0.0/0", "8.8.8.8", 80, true },
		{ "10.0.0.0/8", "ten.example", 80, false },
		{ "::1", "::1", 80, true },
		{ "[::1]", "::1", 80, true },
		{ "fd00::/8", "fd12:3456::1", 80, true },
		{ "fd00::/8", "fe80::1", 80, false },
		{ "2001:db8::/32", "2001:db8:0:0:0:0:0:1", 80, true },
		{ "::ffff:10.0.0.0/104", "::ffff:10.1.2.3", 80, true },
		{ "example.org:8080", "example.org", 8080, true },
		{ "example.org:8080", "example.org", 80, false },
		{ "[::1]:8080", "::1", 8080, true },
		{ "127.0.0.1:9", "127.0.0.1", 80, false },
		{ "", "example.org", 80, false },
		{ ",,", "example.org", 80, false },
	}
	for _, c in ipairs(cases) do
		it(("%q covers %s:%d: %s"):format(c[1], c[2], c[3], tostring(c[4])), function()
			assert.equal(c[4], P.bypass(c[1], c[2], c[3]))
		end)
	end

	it("is read in both cases, and only for hosts the chosen variable would proxy", function()
		assert.is_nil(P.choose(nil, "ws", "127.0.0.1", 80, env { http_proxy = "http://p:1", no_proxy = "127.0.0.1" }))
		assert.is_nil(P.choose(nil, "ws", "127.0.0.1", 80, env { http_proxy = "http://p:1", NO_PROXY = "localhost,127.0.0.0/8" }))
		assert.equal("p", P.choose(nil, "ws", "example.org", 80, env { http_proxy = "http://p:1", no_proxy = "127.0.0.1" }).host)
	end)
end)

describe("addresses", function()
	it("IPv4 and IPv6 literals, names are not", function()
		assert.same({ 127, 0, 0, 1 }, P.ip_bytes("127.0.0.1"))
		assert.is_nil(P.ip_bytes("127.0.0.256"))
		assert.is_nil(P.ip_bytes("127.0.0.01"))
		assert.is_nil(P.ip_bytes("1.2.3"))
		assert.same({ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 }, P.ip_bytes("::1"))
		assert.same({ 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, P.ip_bytes("2001:db8::"))
		assert.same({ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3 }, P.ip_bytes("::ffff:10.1.2.3"))
		assert.is_nil(P.ip_bytes("1::2::3"))
		assert.is_nil(P.ip_bytes("1:2:3:4:5:6:7:8:9"))
		assert.is_nil(P.ip_bytes("example.org"))
	end)
end)
