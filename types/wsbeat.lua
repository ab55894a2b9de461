---@meta wsbeat
-- LuaLS (lua-language-server) definitions for wsbeat. Add this folder to
-- "workspace.library" (or install the rock: it ships this file) so editors
-- complete and check calls. Kept in sync with the code by
-- scripts/check-api.lua (run by the specs).

---@alias wsbeat.State "connecting"|"open"|"reconnecting"|"closing"|"closed"
---@alias wsbeat.Kind "text"|"binary"
---@alias wsbeat.Cause "connected"|"accepted"|"server_closed"|"slow_consumer"|"reconnect"|"heartbeat_timeout"|"refused"|"dns"|"connect_timeout"|"tls"|"http_status"|"handshake"|"network"|"protocol_error"|"too_big"|"closed_by_peer"|"connection_lost"|"closed_by_user"|"gave_up"|"proxy"|"proxy_auth"
---@alias wsbeat.LogLevel "error"|"warn"|"info"|"debug"

---@class wsbeat.Heartbeat
---@field interval? number seconds of silence before a probe (default 20)
---@field timeout? number seconds to wait for anything after the probe (default 20)
---@field mode? "ping"|"message" protocol PING (default) or an application message
---@field message? string the text sent in "message" mode (required there)

---@class wsbeat.Reconnect
---@field delay? number first delay in seconds (default 1)
---@field max_delay? number cap in seconds, >= delay (default 30, or delay when that is larger)
---@field factor? number growth per consecutive failure (default 2)
---@field jitter? number 0 = none, 1 = anywhere in [0, d] (default 0.5)
---@field min_uptime? number seconds open before the failure count resets (default 5)
---@field max_attempts? number consecutive failures before "gave_up" (default math.huge)
---@field retry? fun(ws: wsbeat.Client, info: wsbeat.Info): boolean overrides the retry policy; info.retry is the default verdict

---@class wsbeat.TLS
---@field verify? boolean verify chain and host name (default true)
---@field ca_file? string PEM file of trusted CAs (replaces the system store)
---@field ca_path? string hashed directory of trusted CAs (replaces the system store)
---@field cert_file? string client certificate chain (PEM)
---@field key_file? string client private key (PEM)
---@field server_name? string name for SNI, the certificate check and Host

---@class wsbeat.Options
---@field on_message? fun(ws: wsbeat.Client, data: string, kind: wsbeat.Kind) without it, messages queue for receive()
---@field on_state? fun(ws: wsbeat.Client, state: wsbeat.State, info: wsbeat.Info)
---@field on_error? fun(ws: wsbeat.Client, err: string) errors raised in callbacks; without it they are re-raised from step()
---@field protocols? string[]|string subprotocols offered (Sec-WebSocket-Protocol)
---@field headers? table<string, string|number>|fun(ws: wsbeat.Client): table<string, string|number> extra request headers; a function is called before every attempt; User-Agent defaults to wsbeat/<version>
---@field origin? string Origin header
---@field connect_timeout? number seconds for DNS + TCP + TLS + upgrade (default 10)
---@field close_timeout? number seconds to wait for the peer's close frame (default 3)
---@field heartbeat? wsbeat.Heartbeat|boolean false disables, true means the defaults
---@field reconnect? wsbeat.Reconnect|boolean false disables, true means the defaults
---@field proxy? string|false|fun(ws: wsbeat.Client): string|false|nil http://[user:pass@]host:port, socks5://, socks5h://; false = direct; absent = the environment
---@field max_message_size? integer bytes; larger incoming messages close with 1009 (default 16 MiB)
---@field max_queue? integer messages held for receive() before reading pauses (default 256)
---@field send_buffer? integer bytes buffered while not open or while the socket is slow (default 1 MiB)
---@field tls? wsbeat.TLS
---@field compression? boolean permessage-deflate (default false)

---@class wsbeat.Info
---@field reason string human-readable
---@field cause wsbeat.Cause stable token for programs
---@field code? integer close code, when there was one
---@field status? integer HTTP status of a failed upgrade
---@field attempt integer consecutive failed attempts; in "reconnecting" and the "connecting" after it, the number of that reconnect attempt (1 = the first)
---@field delay? number seconds before the next attempt ("reconnecting")
---@field previous wsbeat.State the state left
---@field unsent? integer messages dropped from the send buffer ("closed")
---@field retry? boolean the default policy's verdict (reconnect.retry only)

---@class wsbeat.ClientStats
---@field rtt? number last round trip in seconds, from the pong of a heartbeat probe or of ping()
---@field proxy? string the proxy of the current or last attempt (scheme://host:port, never the password)
---@field messages_sent integer
---@field messages_received integer
---@field bytes_sent integer
---@field bytes_received integer
---@field reconnects integer
---@field buffered integer bytes waiting to be sent
---@field queued integer messages waiting for receive()
---@field connected_at? number wall-clock time (seconds) the connection opened

---@class wsbeat.EngineStats
---@field connecting integer
---@field open integer
---@field reconnecting integer
---@field closing integer
---@field closed integer
---@field messages_sent integer
---@field messages_received integer
---@field bytes_sent integer
---@field bytes_received integer
---@field reconnects integer
---@field log_dropped integer

---@class wsbeat.Client
local Client = {}

---Send a message; buffered while (re)connecting. Sent from a callback or a
---spawned coroutine, it leaves with the others sent during the same step()
---(one write, in order).
---@param data string
---@param kind? wsbeat.Kind default "text" (must be valid UTF-8)
---@return true|nil ok
---@return string? err "invalid UTF-8" | "send buffer full" | "closed"
function Client:send(data, kind) end

---Send an extra PING now; its pong refreshes stats().rtt.
---@param payload? string at most 125 bytes
---@return true|nil ok
---@return string? err "not open" | "closed"
function Client:ping(payload) end

---Graceful close; no reconnect afterwards. Messages that arrive before the
---peer answers are still delivered.
---@param code? integer 1000 (default), 1001 (going away) or 3000-4999
---@param reason? string at most 123 bytes
function Client:close(code, reason) end

---Next queued message; waits (coroutine-friendly) when none is queued.
---@param timeout? number seconds
---@return string|nil data
---@return wsbeat.Kind|"timeout"|"closed" kind_or_err
function Client:receive(timeout) end

---Iterate over data, kind until the client is closed.
---@return fun(): string?, wsbeat.Kind?
function Client:messages() end

---@return wsbeat.State
function Client:state() end

---@return string
function Client:url() end

---@return string? protocol the negotiated subprotocol
function Client:protocol() end

---@return wsbeat.ClientStats
function Client:stats() end

---cqueues pollable protocol: the engine fd.
---@return integer
function Client:pollfd() end

---cqueues pollable protocol.
---@return "r"
function Client:events() end

---cqueues pollable protocol: wsbeat.timeout().
---@return number?
function Client:timeout() end

---LuaSocket select protocol: the engine fd.
---@return integer
function Client:getfd() end

---LuaSocket select protocol: true when step() has work now.
---@return boolean
function Client:dirty() end

---@class wsbeat.ServerTLS
---@field cert_file string the server's certificate chain (PEM)
---@field key_file string its private key (PEM)
---@field ca_file? string CA that signs client certificates
---@field verify_client? boolean require a client certificate signed by ca_file

---@class wsbeat.Request
---@field path string
---@field query? string as sent after "?", percent-escapes decoded
---@field remote string the client's address
---@field remote_port integer
---@field protocols string[] subprotocols offered
---@field headers table<string, string> every header by its lower-case name (repeated ones joined with ", ")

---@class wsbeat.ServerOptions
---@field host? string address to bind (default "127.0.0.1"; "::" = every address)
---@field port integer 0 = any free port
---@field tls? wsbeat.ServerTLS
---@field protocols? string[]|string subprotocols spoken, in order of preference
---@field on_upgrade? fun(request: wsbeat.Request): boolean, (string|integer)?, string?
---@field on_open? fun(conn: wsbeat.Conn) without it, connections wait for accept()
---@field on_message? fun(conn: wsbeat.Conn, data: string, kind: wsbeat.Kind)
---@field on_state? fun(conn: wsbeat.Conn, state: wsbeat.State, info: wsbeat.Info)
---@field on_error? fun(conn: wsbeat.Conn|wsbeat.Server, err: string)
---@field heartbeat? wsbeat.Heartbeat|boolean per connection (default interval 20, timeout 20)
---@field handshake_timeout? number seconds from accept to upgrade (default 10)
---@field max_connections? integer beyond it upgrades get 503 (default 10000)
---@field on_full? "refuse"|"close" a connection whose send buffer is full (default "refuse")
---@field max_message_size? integer
---@field max_queue? integer
---@field send_buffer? integer
---@field compression? boolean permessage-deflate with clients that offer it (default false)
---@field close_timeout? number

---@class wsbeat.ServerStats
---@field connections integer open now
---@field handshaking integer
---@field accepted integer
---@field upgraded integer
---@field refused integer
---@field rejected_full integer
---@field handshake_timeouts integer
---@field slow_consumers integer
---@field messages_sent integer
---@field messages_received integer
---@field bytes_sent integer
---@field bytes_received integer
---@field listening boolean

---@class wsbeat.Server
local Server = {}

---@return integer port
function Server:port() end

---Iterator over the open connections.
---@return fun(): wsbeat.Conn?
function Server:clients() end

---Queue a message for every open connection (or those filter picks).
---@param data string
---@param kind? wsbeat.Kind
---@param filter? fun(conn: wsbeat.Conn): boolean
---@return integer|nil count
---@return string? err "invalid UTF-8"
function Server:broadcast(data, kind, filter) end

---The next new connection (servers without on_open); coroutine-friendly.
---@param timeout? number
---@return wsbeat.Conn|nil conn
---@return "timeout"|"closed"|nil err
function Server:accept(timeout) end

---Stop listening, close every connection and wait for them.
---@param code? integer default 1001
---@param reason? string
function Server:close(code, reason) end

---@return wsbeat.ServerStats
function Server:stats() end

---@class wsbeat.Conn
local Conn = {}

---@param data string
---@param kind? wsbeat.Kind
---@return true|nil ok
---@return string? err
function Conn:send(data, kind) end

---@param payload? string
---@return true|nil ok
---@return string? err
function Conn:ping(payload) end

---@param code? integer
---@param reason? string
function Conn:close(code, reason) end

---@param timeout? number
---@return string|nil data
---@return wsbeat.Kind|"timeout"|"closed" kind_or_err
function Conn:receive(timeout) end

---@return fun(): string?, wsbeat.Kind?
function Conn:messages() end

---@return wsbeat.State
function Conn:state() end

---@return string? protocol
function Conn:protocol() end

---@return wsbeat.ClientStats
function Conn:stats() end

---@return wsbeat.Request
function Conn:request() end

---@return string address
---@return integer port
function Conn:remote() end

---@return integer
function Conn:pollfd() end

---@return "r"
function Conn:events() end

---@return number?
function Conn:timeout() end

---@return integer
function Conn:getfd() end

---@return boolean
function Conn:dirty() end

---@class wsbeat
---@field _VERSION string
---@field defaults wsbeat.Options
local wsbeat = {}

---Create a client and start connecting (never blocks).
---@param url string ws:// or wss:// URL
---@param options? wsbeat.Options
---@return wsbeat.Client
function wsbeat.connect(url, options) end

---Listen for WebSocket connections (served by step()/run()).
---@param options wsbeat.ServerOptions
---@return wsbeat.Server|nil server
---@return string? err
function wsbeat.listen(options) end

---The engine's pollable file descriptor (readable when step() has work).
---@return integer
function wsbeat.fd() end

---Seconds until step() must be called at the latest; 0 = now.
---@return number?
function wsbeat.timeout() end

---Service I/O and due timers and call the callbacks. Never blocks.
function wsbeat.step() end

---Run until every client is closed and every spawned coroutine finished.
---@param timeout? number seconds
---@return boolean finished false when the timeout passed first
function wsbeat.run(timeout) end

---Run fn(...) as a coroutine whose receive() calls yield to wsbeat. Only
---receive() may yield in it; its errors are raised from spawn()/step()/run().
---@param fn function
---@param ... any
---@return thread
function wsbeat.spawn(fn, ...) end

---Engine-wide counters.
---@return wsbeat.EngineStats
function wsbeat.stats() end

---Route log lines to a function(level, text), "stderr", or nil (off).
---@param target? fun(level: wsbeat.LogLevel, text: string)|"stderr"
---@param level? wsbeat.LogLevel default "info"
function wsbeat.log(target, level) end

return wsbeat
