-- Keeps the API reference (docs/API.md) and the LuaLS definitions
-- (types/wsbeat.lua) in sync with the code: every public function, method
-- and option must appear in both, and both may name nothing that does not
-- exist.  Exit status 1 with a list of differences otherwise.
-- usage (from the checkout): lua5.4 scripts/check-api.lua
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath
local wsbeat = require "wsbeat"

local function read(path)
	local f = assert(io.open(path))
	local s = f:read("a")
	f:close()
	return s
end

local problems = {}
local function problem(fmt, ...) problems[#problems + 1] = fmt:format(...) end

-- what the code has
local funcs, methods, options = {}, {}, {}
for k, v in pairs(wsbeat) do
	if type(v) == "function" and k:sub(1, 1) ~= "_" then funcs[k] = true end
end
local ws = wsbeat.connect("ws://127.0.0.1:9/", { reconnect = false })
for k in pairs(getmetatable(ws).__index) do
	if k:sub(1, 1) ~= "_" then methods[k] = true end
end
ws:close()
wsbeat.run(2)
local s_methods, c_methods, s_options = {}, {}, {}
for k in pairs(require("wsbeat.core").server_methods) do
	if k:sub(1, 1) ~= "_" then s_methods[k] = true end
end
for k in pairs(require("wsbeat.core").conn_methods) do
	if k:sub(1, 1) ~= "_" then c_methods[k] = true end
end
-- (one checker per option in lua/wsbeat/options.lua; should those lines
-- move again, finding none must fail here, not as a list of every option)
for k in read("lua/wsbeat/options.lua"):gmatch("\nOPTION%.([%w_]+) =") do options[k] = true end
assert(next(options), "no OPTION.name = lines found in lua/wsbeat/options.lua")
for k in read("lua/wsbeat/options.lua"):gmatch("\nSERVER_OPTION%.([%w_]+) =") do s_options[k] = true end
for k in read("lua/wsbeat/options.lua"):match("for _, k in ipairs (%b{}) do\n\tSERVER_OPTION"):gmatch('"([%w_]+)"') do
	s_options[k] = true
end

-- what the definitions say
assert(loadfile("types/wsbeat.lua")) -- valid Lua
local types = read("types/wsbeat.lua")
local t_funcs, t_methods, t_options = {}, {}, {}
for k in types:gmatch("\nfunction wsbeat%.([%w_]+)%(") do t_funcs[k] = true end
for k in types:gmatch("\nfunction Client:([%w_]+)%(") do t_methods[k] = true end
local opt_block = types:match("%-%-%-@class wsbeat%.Options\n(.-)\n\n")
for k in (opt_block or ""):gmatch("%-%-%-@field ([%w_]+)") do t_options[k] = true end
local t_smethods, t_cmethods, t_soptions = {}, {}, {}
for k in types:gmatch("\nfunction Server:([%w_]+)%(") do t_smethods[k] = true end
for k in types:gmatch("\nfunction Conn:([%w_]+)%(") do t_cmethods[k] = true end
local sopt_block = types:match("%-%-%-@class wsbeat%.ServerOptions\n(.-)\n\n")
for k in (sopt_block or ""):gmatch("%-%-%-@field ([%w_]+)") do t_soptions[k] = true end

-- what the reference says
local doc = read("docs/API.md")

local function compare(have, listed, what, where)
	for k in pairs(have) do
		if not listed[k] then problem("%s '%s' is missing from %s", what, k, where) end
	end
	for k in pairs(listed) do
		if not have[k] then problem("%s names %s '%s', which does not exist", where, what, k) end
	end
end
compare(funcs, t_funcs, "function", "types/wsbeat.lua")
compare(methods, t_methods, "method", "types/wsbeat.lua")
compare(options, t_options, "option", "types/wsbeat.lua")
compare(s_methods, t_smethods, "server method", "types/wsbeat.lua")
compare(c_methods, t_cmethods, "connection method", "types/wsbeat.lua")
compare(s_options, t_soptions, "server option", "types/wsbeat.lua")

for k in pairs(funcs) do
	if not doc:find("wsbeat." .. k, 1, true) then problem("function 'wsbeat.%s' is missing from docs/API.md", k) end
end
for k in pairs(methods) do
	if not doc:find("ws:" .. k .. "(", 1, true) then problem("method 'ws:%s()' is missing from docs/API.md", k) end
end
for k in pairs(options) do
	if not doc:find("| `" .. k .. "` |", 1, true) then problem("option '%s' is missing from the options table of docs/API.md", k) end
end

local server_doc = doc:match("\n## Server(.-)\n## ") or ""
for k in pairs(s_methods) do
	if not server_doc:find("server:" .. k .. "(", 1, true) then problem("method 'server:%s()' is missing from docs/API.md's Server section", k) end
end
for k in pairs(c_methods) do
	if not server_doc:find("conn:" .. k .. "(", 1, true) then problem("method 'conn:%s()' is missing from docs/API.md's Server section", k) end
end
for k in pairs(s_options) do
	if not server_doc:find("`" .. k .. "`", 1, true) then problem("server option '%s' is missing from docs/API.md's Server section", k) end
end

if #problems > 0 then
	table.sort(problems)
	io.stderr:write(table.concat(problems, "\n"), "\n")
	os.exit(1)
end
print("API reference and type definitions match the code")
