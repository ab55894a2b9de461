local H = require "helper"

describe("packaging", function()
	it("builds and installs with luarocks make, offline, without linking liblua", function()
		local tree = H.tmpdir() .. "/rocktree"
		local out = H.sh(("cd %s && luarocks --lua-version 5.4 --tree %s make rockspec/wsbeat-scm-1.rockspec 2>&1; echo rc=$?")
			:format(H.ROOT, tree))
		assert.matches("rc=0", out, 1, true)
		local so = tree .. "/lib/lua/5.4/wsbeat/core.so"
		local ldd = H.sh("ldd " .. so)
		assert.matches("libwebsockets", ldd)
		assert.not_matches("liblua", ldd)
		local v = H.sh(("cd /tmp && LUA_PATH='%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua' LUA_CPATH='%s/lib/lua/5.4/?.so' lua5.4 -e 'print(require(\"wsbeat\")._VERSION)' 2>&1")
			:format(tree, tree, tree))
		assert.equal("wsbeat 0.1.0\n", v)
		-- luarocks builds in the source tree: leave it as it was
		os.execute(("cd %s && rm -f src/*.o wsbeat/core.so && rmdir wsbeat 2>/dev/null"):format(H.ROOT))
	end)

	it("installs with make install DESTDIR/PREFIX", function()
		local dest = H.tmpdir() .. "/dest"
		local out = H.sh(("cd %s && make -s install DESTDIR=%s PREFIX=/opt/w 2>&1; echo rc=$?"):format(H.ROOT, dest))
		assert.matches("rc=0", out, 1, true)
		local v = H.sh(("cd /tmp && LUA_PATH='%s/opt/w/share/lua/5.4/?.lua;%s/opt/w/share/lua/5.4/?/init.lua' LUA_CPATH='%s/opt/w/lib/lua/5.4/?.so' lua5.4 -e 'print(require(\"wsbeat\")._VERSION)' 2>&1")
			:format(dest, dest, dest))
		assert.equal("wsbeat 0.1.0\n", v)
	end)
end)

describe("API reference", function()
	it("docs/API.md and types/wsbeat.lua match the code (scripts/check-api.lua)", function()
		local out = H.sh(("cd %s && lua5.4 scripts/check-api.lua 2>&1; echo rc=$?"):format(H.ROOT))
		assert.matches("API reference and type definitions match the code\nrc=0", out, 1, true)
	end)
end)
