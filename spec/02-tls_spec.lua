local H = require "helper"

describe("wss", function()
	local srv, certs
	setup(function()
		certs = H.certs()
		srv = H.server { tls = true }
	end)
	teardown(function() srv:stop() end)

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
		assert(os.execute(string.format("mkdir -p %s && cp %s/ca.pem %s/ && openssl rehash %s 2>/dev/null || c_rehash %s >/dev/null",
			dir, certs, dir, dir, dir)))
		local ws = H.client(srv:url(), { tls = { ca_path = dir } })
		H.wait_state(ws, "open")
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("uses the URL's host name for the certificate check: localhost", function()
		local ws = H.client(("wss://localhost:%d/echo"):format(srv.port), { tls = { ca_file = certs .. "/ca.pem" } })
		H.wait_state(ws, "open")
		ws:close()
		H.wait_state(ws, "closed")
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
		local ws = H.client(srv:url(), { tls = { verify = false } })
		H.wait_state(ws, "open")
		ws:close()
		H.wait_state(ws, "closed")
	end)

	it("reports an unreadable ca_file as cause tls", function()
		local ws, rec = H.client(srv:url(), { tls = { ca_file = "/nonexistent/ca.pem" } })
		H.wait_state(ws, "closed")
		assert.equal("tls", rec.infos[1].cause)
		assert.matches("cannot load ca_file '/nonexistent/ca.pem'", rec.infos[1].reason, 1, true)
	end)

	it("works over IPv6 loopback with the address in the certificate", function()
		local srv6 = H.server { tls = true, host = "::1" }
		local ws, rec = H.client(srv6:url(), {
			tls = { ca_file = certs .. "/ca.pem" },
			on_state = function(ws, st) if st == "open" then ws:send("v6") end end,
		})
		H.run_until(function() return #rec.messages == 1 end, 5, "echo over v6")
		assert.equal("v6", rec.messages[1].data)
		ws:close()
		H.wait_state(ws, "closed")
		assert.equal(1000, srv6:wait_event("close").code)
		srv6:stop()
	end)
end)

describe("wss against node ws", function()
	it("echoes and closes cleanly", function()
		local certs = H.certs()
		local srv = H.server { tls = true, kind = "node" }
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
		srv:stop()
	end)
end)

describe("mutual TLS", function()
	local srv, certs
	setup(function()
		certs = H.certs()
		srv = H.server { tls = true, client_ca = H.certs() .. "/ca.pem" }
	end)
	teardown(function() srv:stop() end)

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
end)
