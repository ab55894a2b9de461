-- One source for every Lua: the core built against Lua 5.1, 5.2, 5.3 and
-- LuaJIT 2.1 (make LUA_VERSION=...), each running the client against a
-- python server and wsbeat's own server against the client
-- (spec/fixtures/versions.lua).  5.4 is the reference the other specs run.
local H = require "helper"
local q = H.quote

local VERSIONS = {
	{ name = "5.3", lua = "lua5.3", build = "build-5.3" },
	{ name = "5.2", lua = "lua5.2", build = "build-5.2" },
	{ name = "5.1", lua = "lua5.1", build = "build-5.1" },
	{ name = "jit", lua = "luajit", build = "build-jit" },
}

describe("every Lua #versions", function()
	for _, v in ipairs(VERSIONS) do
		it(("the core builds and runs on %s: client and server, messages, close codes, receive() in a coroutine"):format(
			v.name == "jit" and "LuaJIT" or "Lua " .. v.name), function()
			local out = H.sh(("cd %s && make -s all LUA_VERSION=%s 2>&1; echo rc=$?"):format(q(H.ROOT), v.name))
			assert.matches("rc=0\n$", out)
			assert.not_matches("warning", out)
			local srv = H.server {}
			finally(function() srv:stop() end)
			local run = H.sh(("cd %s && LUA_PATH='./lua/?.lua;./lua/?/init.lua' LUA_CPATH='./%s/?.so' " ..
				"timeout 60 %s spec/fixtures/versions.lua %s 2>&1; echo rc=$?"):format(
				q(H.ROOT), v.build, v.lua, q(srv.base)))
			assert.equal(table.concat({
				"CLIENT open,closing,closed text:h\\195\\169llo|binary:\\0\\1\\2\\255",
				"SERVER open,closed=4001 one,two echoed one,two",
				"RECEIVE r1/text r2/binary " .. (v.name == "5.1"
					and "pcall failed:attempt to yield across metamethod/C-call boundary"
					or "pcall:r3"),
				"rc=0", "" }, "\n"), run)
			-- the interpreter really was that version
			local ver = H.sh(("%s -e 'print(_VERSION, jit and jit.version or \"\")'"):format(v.lua))
			assert.matches(v.name == "jit" and "^Lua 5%.1\tLuaJIT 2%.1" or ("^Lua " .. v.name:gsub("%.", "%%.")), ver)
		end)
	end
end)
