-- The echo server that conformance runs and benchmarks drive:
--   lua5.4 scripts/echo-server.lua --port PORT [--host H] [--cert FILE --key FILE]
--                                  [--no-heartbeat] [--compression]
-- Prints "listening PORT" once it listens (PORT 0: the port it got), echoes
-- every message (text as text, binary as binary) and runs until SIGTERM or
-- SIGINT.  Messages up to 64 MiB (the suite's 9.x cases send 16 MiB).
local wsbeat = require "wsbeat"

local opts = { port = 0, max_message_size = 64 * 1024 * 1024 }
local i = 1
while arg[i] do
	local a = arg[i]
	if a == "--port" then opts.port = assert(tonumber(arg[i + 1]), "--port N"); i = i + 1
	elseif a == "--host" then opts.host = arg[i + 1]; i = i + 1
	elseif a == "--cert" then opts.tls = opts.tls or {}; opts.tls.cert_file = arg[i + 1]; i = i + 1
	elseif a == "--key" then opts.tls = opts.tls or {}; opts.tls.key_file = arg[i + 1]; i = i + 1
	elseif a == "--no-heartbeat" then opts.heartbeat = false
	elseif a == "--compression" then opts.compression = true
	else io.stderr:write("echo-server.lua: unknown argument ", a, "\n"); os.exit(2) end
	i = i + 1
end
-- (a 256 MiB send buffer: Autobahn's 9.x and pipelining load clients send
-- far more than the default 1 MiB before they read; an echo that still
-- does not fit is reported, never dropped in silence)
opts.send_buffer = 256 * 1024 * 1024
opts.on_message = function(conn, data, kind)
	local ok, err = conn:send(data, kind)
	if not ok then io.stderr:write("echo-server.lua: echo not sent: ", err, "\n") end
end
local server = assert(wsbeat.listen(opts))
print("listening " .. server:port())
io.stdout:flush()
wsbeat.run()
