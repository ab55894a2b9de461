local H = require "helper"
local q = H.quote

-- LUA_PATH and LUA_CPATH for a tree made by luarocks or make install
local function tree_env(prefix)
	return ("LUA_PATH=%s LUA_CPATH=%s"):format(
		q(prefix .. "/share/lua/5.4/?.lua;" .. prefix .. "/share/lua/5.4/?/init.lua"),
		q(prefix .. "/lib/lua/5.4/?.so"))
end

describe("packaging", function()
	it("the rockspec builds the core from the Makefile's sources", function()
		local make = H.read_file(H.ROOT .. "/Makefile"):match("\nSRCS = ([^\n]*)")
		local spec = H.read_file(H.ROOT .. "/rockspec/wsbeat-scm-1.rockspec"):match('%["wsbeat%.core"%] = {%s*sources = (%b{})')
		local listed = {}
		for f in spec:gmatch('"([^"]+)"') do listed[#listed + 1] = f end
		assert.equal(make, table.concat(listed, " "))
	end)

	it("builds and installs with luarocks make, offline, without linking liblua #slow", function()
		local tree = H.tmpdir() .. "/rocktree"
		local out = H.sh(("cd %s && luarocks --lua-version 5.4 --tree %s make rockspec/wsbeat-scm-1.rockspec 2>&1; echo rc=$?")
			:format(q(H.ROOT), q(tree)))
		assert.matches("rc=0", out, 1, true)
		local so = tree .. "/lib/lua/5.4/wsbeat/core.so"
		local ldd = H.sh("ldd " .. q(so))
		assert.matches("libwebsockets", ldd)
		assert.not_matches("liblua", ldd)
		local v = H.sh(("cd /tmp && %s lua5.4 -e 'print(require(\"wsbeat\")._VERSION)' 2>&1"):format(tree_env(tree)))
		assert.equal("wsbeat 0.1.0\n", v)
		-- luarocks builds in the source tree: leave it as it was
		H.execute(("cd %s && rm -f src/*.o wsbeat/core.so && rmdir wsbeat 2>/dev/null"):format(q(H.ROOT)))
	end)

	it("luarocks make for Lua 5.1 and for LuaJIT (its headers named on the command line), no compat library needed #slow", function()
		-- in a copy: luarocks builds in the source tree
		local dir = H.tmpdir() .. "/rocksrc"
		finally(function() H.execute("rm -rf " .. q(dir)) end)
		assert.equal("rc=0\n", H.sh(("mkdir -p %s && cd %s && cp -r src lua rockspec bin docs types %s/; echo rc=$?")
			:format(q(dir), q(H.ROOT), q(dir))))
		for _, case in ipairs {
			{ "lua5.1", "", "Lua 5.1" },
			{ "luajit", " LUA_INCDIR=/usr/include/luajit-2.1", "LuaJIT" },
		} do
			local tree = H.tmpdir() .. "/rocktree-" .. case[1]
			local out = H.sh(("cd %s && rm -f src/*.o && luarocks --lua-version 5.1 --tree %s make rockspec/wsbeat-scm-1.rockspec%s 2>&1; echo rc=$?")
				:format(q(dir), q(tree), case[2]))
			assert.matches("rc=0", out, 1, true)
			local env = ("LUA_PATH=%s LUA_CPATH=%s"):format(
				q(tree .. "/share/lua/5.1/?.lua;" .. tree .. "/share/lua/5.1/?/init.lua"),
				q(tree .. "/lib/lua/5.1/?.so"))
			local v = H.sh(("cd /tmp && %s %s -e 'print(require(\"wsbeat\")._VERSION, jit and jit.version or _VERSION)' 2>&1")
				:format(env, case[1]))
			assert.matches("^wsbeat 0%.1%.0\t" .. case[3], v)
		end
	end)

	it("make dist: a source rock that installs offline into an empty tree, whose command needs no cqueues #slow", function()
		local dir, tree = H.tmpdir() .. "/dist", H.tmpdir() .. "/disttree"
		local srv
		finally(function()
			if srv then srv:stop() end
			H.execute(("rm -rf %s %s"):format(q(dir), q(tree)))
		end)
		local had_dist = H.execute(("test -e %s"):format(q(H.ROOT .. "/dist")))
		local out = H.sh(("cd %s && make -s dist DISTDIR=%s 2>&1; echo rc=$?"):format(q(H.ROOT), q(dir)))
		assert.matches("rc=0\n$", out)
		-- the working tree's sources, under one top directory; nothing built
		local list = H.sh(("tar tzf %s"):format(q(dir .. "/wsbeat-0.1.0.tar.gz")))
		for _, f in ipairs { "rockspec/wsbeat-scm-1.rockspec", "src/lcli.c", "lua/wsbeat/init.lua", "bin/wsbeat" } do
			assert.matches("\nwsbeat%-0%.1%.0/" .. f:gsub("%p", "%%%0") .. "\n", "\n" .. list)
		end
		assert.not_matches("\n[^/]*/build/", "\n" .. list)
		assert.not_matches("%.o\n", list)
		for line in list:gmatch("[^\n]+") do assert.matches("^wsbeat%-0%.1%.0/", line) end
		-- installed without a network (where a network namespace can be made)
		local offline = H.execute("unshare -n true 2>/dev/null") and "unshare -n " or ""
		out = H.sh(("cd /tmp && %sluarocks --lua-version 5.4 --tree %s install %s 2>&1; echo rc=$?")
			:format(offline, q(tree), q(dir .. "/wsbeat-0.1.0-1.src.rock")))
		assert.matches("wsbeat 0.1.0-1 is now installed", out, 1, true)
		assert.matches("rc=0\n$", out)
		-- no cqueues on the paths, and any require of it raises
		local env = "LUA_PATH='/nonexistent/?.lua' LUA_CPATH='/nonexistent/?.so' LUA_INIT_5_4='for _, m in ipairs "
			.. "{ \"cqueues\", \"cqueues.socket\", \"cqueues.signal\", \"cqueues.errno\", \"_cqueues\" } do "
			.. "package.preload[m] = function() error(\"cqueues is not loadable here\", 2) end end'"
		assert.matches("^false\t", H.sh(("cd /tmp && %s lua5.4 -e 'print(pcall(require, \"cqueues\"))' 2>&1"):format(env)))
		local cmd = q(tree .. "/bin/wsbeat")
		assert.equal("wsbeat 0.1.0\n", H.sh(("cd /tmp && %s %s --version 2>&1"):format(env, cmd)))
		out = H.sh(("cd /tmp && %s %s --help 2>&1; echo rc=$?"):format(env, cmd))
		assert.matches("^Usage: wsbeat %[options%] URL\n", out)
		assert.matches("\nrc=0\n$", out)
		-- and talks to a peer
		srv = H.server {}
		out = H.sh(("cd /tmp && printf 'installed\\n' | %s timeout 10 %s -q %s 2>&1; echo rc=$?")
			:format(env, cmd, q(srv:url("/echo"))))
		assert.equal("installed\nrc=0\n", out)
		-- the checkout is as it was: make dist wrote only into DISTDIR
		assert.equal(had_dist, H.execute(("test -e %s"):format(q(H.ROOT .. "/dist"))))
	end)

	it("installs with make install DESTDIR/PREFIX", function()
		local dest = H.tmpdir() .. "/dest"
		local out = H.sh(("cd %s && make -s install DESTDIR=%s PREFIX=/opt/w 2>&1; echo rc=$?"):format(q(H.ROOT), q(dest)))
		assert.matches("rc=0", out, 1, true)
		local v = H.sh(("cd /tmp && %s lua5.4 -e 'print(require(\"wsbeat\")._VERSION)' 2>&1"):format(tree_env(dest .. "/opt/w")))
		assert.equal("wsbeat 0.1.0\n", v)
	end)
end)

describe("API reference", function()
	it("docs/API.md and types/wsbeat.lua match the code (scripts/check-api.lua)", function()
		local out = H.sh(("cd %s && lua5.4 scripts/check-api.lua 2>&1; echo rc=$?"):format(q(H.ROOT)))
		assert.matches("API reference and type definitions match the code\nrc=0", out, 1, true)
	end)
end)
