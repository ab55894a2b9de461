-- An echo server: every message comes back to its sender.
--   lua5.4 examples/echo-server.lua [PORT]     (default 8080; 0 = any free port)
local wsbeat = require "wsbeat"

local server = assert(wsbeat.listen {
	port = tonumber(arg[1]) or 8080,
	on_message = function(conn, data, kind) conn:send(data, kind) end,
})
print("listening on port " .. server:port())
io.stdout:flush()
wsbeat.run()
