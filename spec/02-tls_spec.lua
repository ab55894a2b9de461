local H = require "helper"

describe("wss", function()
	local srv, certs
	setup(function()
		certs = H.certs()
		srv = H.server { tls = true }
	end)
	teardown(function() H.stop(srv) end)

	it("verifies the chain and host name with ca_file and echoes", function()
		local ws, rec = H.client(srv:url(), {
			tls = { ca_file = certs .. "/ca.pem" },
			on_state = function(ws, st) if st == "open" then ws:send("over tls") end end,
		})
		H.run_until(function() return #rec.messages == 1 end, 5, "echo")
		assert.equal("over tls", rec.messages[1].data)
		ws:close()
		H.wait_state(ws, "closed")
		assert.equal(1000, srv:wait_event("close").code)
	end)

	it("verifies with ca_path (a hashed directory)", function()
		local dir = H.tmpdir() .. "/capath"
		local q = H.quote
		assert(H.execute(string.format("mkdir -p %s && cp %s %s/ && { openssl rehash %s 2>/dev/null || c_rehash %s >/dev/null; }",
			q(dir), q(certs .. "/ca.pem"), q(dir), q(dir), q(dir))))
		-- the directory is hashed: OpenSSL finds the CA by its subject hash
		assert.matches("%x%x%x%x%x%x%x%x%.0\n", H.sh(("ls %s"):format(q(dir))))
		local ws, rec = H.client(srv:url("/echo?capath"), {
			tls = { ca_path = dir },
			on_state = function(ws, st) if st == "open" then ws:send("via ca_path") end end,
		})
		H.run_until(function() return #rec.messages == 1 end, 5, "echo")
		assert.equal("via ca_path", rec.messages[1].data)
		ws:close()
		H.wait_state(ws, "closed")
		assert.same({ "open", "closing", "closed" }, rec.states)
		assert.equal("closed_by_user", rec.infos[3].cause)
		local id = srv:wait_event("connect", function(e) return e.path == "/echo?capath" end).id
		assert.equal(1000, srv:wait_event("close", function(e) return e.id == id end).code)
	end)

	it("uses the URL's host name for the certificate check: localhost", function()
		local ws, rec = H.client(("wss://localhost:%d/echo?byname"):format(srv.port), { tls = { ca_file = certs .. "/ca.pem" } })
		H.wait_state(ws, "open")
		ws:close()
		H.wait_state(ws, "closed")
		assert.same({ "open", "closing", "closed" }, rec.states)
		assert.equal("closed_by_user", rec.infos[3].cause)
		-- the server saw the name (Host), over the verified link
		local ev = srv:wait_event("connect", function(e) return e.path == "/echo?byname" end)
		assert.equal("localhost:" .. srv.port, ev.headers.host)
		assert.equal(1000, srv:wait_event("close", function(e) return e.id == ev.id end).code)
	end)

	it("fails with cause tls and OpenSSL's reason for an unknown CA, without retrying", function()
		local ws, rec = H.client(srv:url(), {})
		H.wait_state(ws, "closed")
		assert.same({ "closed" }, rec.states)
		assert.equal("tls", rec.infos[1].cause)
		assert.matches("unable to get local issuer certificate", rec.infos[1].reason, 1, true)
	end)

	it("fails with cause tls when the name does not match (server_name)", function()
		local ws, rec = H.client(srv:url(), { tls = { ca_file = certs .. "/ca.pem", server_name = "other.example" } })
		H.wait_state(ws, "closed")
		assert.equal("tls", rec.infos[1].cause)
		assert.matches("does not match host name 'other.example'", rec.infos[1].reason, 1, true)
	end)

	it("connects to an unverifiable server only with verify = false", function()
		-- the same client with verification on (the default) does not open
		local refused, refused_rec = H.client(srv:url("/echo?verified"), { reconnect = false })
		H.wait_state(refused, "closed")
		assert.same({ "closed" }, refused_rec.states)
		assert.equal("tls", refused_rec.infos[1].cause)
		local ws, rec = H.client(srv:url("/echo?unverified"), {
			tls = { verify = false },
			on_state = function(ws, st) if st == "open" then ws:send("unverified") end end,
		})
		H.run_until(function() return #rec.messages == 1 end, 5, "echo")
		assert.equal("unverified", rec.messages[1].data)
		ws:close()
		H.wait_state(ws, "closed")
		assert.same({ "open", "closing", "closed" }, rec.states)
		assert.equal("closed_by_user", rec.infos[3].cause)
		assert.is_truthy(srv:wait_event("connect", function(e) return e.path == "/echo?unverified" end))
	end)

	it("reports an unreadable ca_file as cause tls", function()
		local ws, rec = H.client(srv:url(), { tls = { ca_file = "/nonexistent/ca.pem" } })
		H.wait_state(ws, "closed")
		assert.equal("tls", rec.infos[1].cause)
		assert.matches("cannot load ca_file '/nonexistent/ca.pem'", rec.infos[1].reason, 1, true)
	end)

	it("works over IPv6 loopback with the address in the certificate", function()
		local srv6 = H.server { tls = true, host = "::1" }
		finally(function() srv6:stop() end)
		local ws, rec = H.client(srv6:url(), {
			tls = { ca_file = certs .. "/ca.pem" },
			on_state = function(ws, st) if st == "open" then ws:send("v6") end end,
		})
		H.run_until(function() return #rec.messages == 1 end, 5, "echo over v6")
		assert.equal("v6", rec.messages[1].data)
		ws:close()
		H.wait_state(ws, "closed")
		assert.equal(1000, srv6:wait_event("close").code)
	end)
end)

describe("wss against node ws", function()
	it("echoes and closes cleanly", function()
		local certs = H.certs()
		local srv = H.server { tls = true, kind = "node" }
		finally(function() srv:stop() end)
		local ws, rec = H.client(srv:url(), {
			tls = { ca_file = certs .. "/ca.pem" },
			on_state = function(ws, st) if st == "open" then ws:send("node tls") end end,
		})
		H.run_until(function() return #rec.messages == 1 end, 5, "echo")
		ws:close(4005, "done")
		H.wait_state(ws, "closed")
		local ev = srv:wait_event("close")
		assert.equal(4005, ev.code)
		assert.equal("done", ev.reason)
	end)
end)

describe("mutual TLS", function()
	local srv, certs
	setup(function()
		certs = H.certs()
		srv = H.server { tls = true, client_ca = H.certs() .. "/ca.pem" }
	end)
	teardown(function() H.stop(srv) end)

	it("presents cert_file/key_file when the server requires a client certificate", function()
		local ws, rec = H.client(srv:url(), {
			tls = { ca_file = certs .. "/ca.pem", cert_file = certs .. "/client.pem", key_file = certs .. "/client.key" },
			on_state = function(ws, st) if st == "open" then ws:send("mtls") end end,
		})
		H.run_until(function() return #rec.messages == 1 end, 5, "echo over mutual TLS")
		assert.equal("mtls", rec.messages[1].data)
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("does not open without a client certificate, and says why (cause tls)", function()
		-- With TLS 1.3 the server rejects the missing certificate after the
		-- handshake and resets the link, which usually destroys its alert;
		-- the client knows from the handshake that a certificate was asked for.
		for _ = 1, 3 do
			local ws, rec = H.client(srv:url(), { tls = { ca_file = certs .. "/ca.pem" }, reconnect = false })
			H.wait_state(ws, "closed")
			assert.same({ "closed" }, rec.states)
			local info = rec.infos[1]
			assert.equal("tls", info.cause)
			if not info.reason:find("certificate required", 1, true) then
				assert.equal("the server requires a client certificate and none is configured (tls.cert_file); it closed the connection", info.reason)
			end
		end
	end)

	it("reports a key that does not match the certificate", function()
		local ws, rec = H.client(srv:url(), {
			tls = { ca_file = certs .. "/ca.pem", cert_file = certs .. "/client.pem", key_file = certs .. "/server.key" },
		})
		H.wait_state(ws, "closed")
		assert.equal("tls", rec.infos[1].cause)
		assert.matches("cannot load key_file '" .. certs .. "/server.key': key values mismatch", rec.infos[1].reason, 1, true)
	end)
end)

describe("TLS failures say why", function()
	local certs
	setup(function() certs = H.certs() end)

	it("an expired certificate", function()
		local srv = H.server { tls = true, cert = "expired" }
		finally(function() srv:stop() end)
		local ws, rec = H.client(("wss://localhost:%d/"):format(srv.port), { tls = { ca_file = certs .. "/ca.pem" } })
		H.wait_state(ws, "closed")
		assert.same({ "closed" }, rec.states) -- not retried
		assert.equal("tls", rec.infos[1].cause)
		assert.matches("certificate has expired", rec.infos[1].reason, 1, true)
	end)

	it("a certificate for another host name", function()
		local srv = H.server { tls = true, cert = "wrong" }
		finally(function() srv:stop() end)
		local ws, rec = H.client(("wss://localhost:%d/"):format(srv.port), { tls = { ca_file = certs .. "/ca.pem" } })
		H.wait_state(ws, "closed")
		assert.equal("tls", rec.infos[1].cause)
		assert.matches("does not match host name 'localhost'", rec.infos[1].reason, 1, true)
	end)

	it("a CA that did not sign the server's certificate", function()
		local srv = H.server { tls = true }
		finally(function() srv:stop() end)
		local ws, rec = H.client(srv:url(), { tls = { ca_file = certs .. "/other-ca.pem" } })
		H.wait_state(ws, "closed")
		assert.equal("tls", rec.infos[1].cause)
		assert.matches("unable to get local issuer certificate", rec.infos[1].reason, 1, true)
	end)

	it("a server that hangs up in the middle of the TLS handshake: a network failure, retried", function()
		-- (a restarting server or a full backlog, not a TLS verdict: the
		-- default policy retries it, as it would a refused connection)
		local raw = H.server { raw = "hangup" }
		finally(function() H.stop(raw) end)
		local url = raw:url("/"):gsub("^ws:", "wss:")
		local ws, rec = H.client(url, { tls = { ca_file = certs .. "/ca.pem" },
			reconnect = { delay = 0.05, jitter = 0, max_attempts = 2 } })
		H.wait_state(ws, "closed", 10)
		assert.same({ "reconnecting", "connecting", "closed" }, rec.states) -- (max_attempts = 2)
		assert.equal("network", rec.infos[1].cause)
		assert.equal("connection failed: closed during the TLS handshake", rec.infos[1].reason)
		assert.equal("gave_up", rec.infos[3].cause)
	end)
end)
