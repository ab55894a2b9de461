-- The C core under AddressSanitizer + UBSan (randomized API exerciser) and
-- libFuzzer on the URL parser.  WSBEAT_EXERCISE_SECONDS runs it longer,
-- WSBEAT_EXERCISE_SEED with another seed.
local H = require "helper"

-- #sanitizer: builds the core with ASan/UBSan and libFuzzer (make asan, make fuzz)
describe("sanitizers #sanitizer", function()
	it("the randomized API exerciser runs clean under ASan + UBSan (leaks included)", function()
		local q = H.quote
		local build = H.sh(("cd %s && make -s asan 2>&1; echo rc=$?"):format(q(H.ROOT)))
		assert.matches("rc=0", build, 1, true)
		local srv = H.server {}
		finally(function() srv:stop() end)
		local seconds = tonumber(os.getenv("WSBEAT_EXERCISE_SECONDS")) or 15
		-- a fixed seed, so a run's verdict does not hang on which random
		-- sequence it drew; WSBEAT_EXERCISE_SEED tries others
		local seed = tonumber(os.getenv("WSBEAT_EXERCISE_SEED")) or 20261203
		local out = H.sh(("cd %s && LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build-asan/?.so;;' " ..
			"LD_PRELOAD=%s ASAN_OPTIONS=detect_leaks=1 timeout %d lua5.4 scripts/exerciser.lua %s %d %d 2>&1; echo rc=$?")
			:format(q(H.ROOT), q((H.sh("gcc -print-file-name=libasan.so"):gsub("\n$", ""))), seconds + 60, q(srv.base), seconds, seed))
		assert.not_matches("AddressSanitizer", out)
		assert.not_matches("LeakSanitizer", out)
		assert.not_matches("runtime error", out)
		assert.matches("EXERCISER DONE\nrc=0", out, 1, true)
		local iterations = tonumber(out:match("iterations=(%d+)"))
		assert.is_true(iterations > 1000, out)
		-- it really went through the interesting paths
		for _, what in ipairs { "state open", "state reconnecting", "state closed", "message", "spawn", "gc",
			"listen", "server state open", "server state closed", "server message", "broadcast", "server close" } do
			assert.matches(what .. "=%d+", out)
		end
	end)

	it("libFuzzer finds nothing in the URL parser, the UTF-8 validator, the frame writer, the server's frame reader, handshake and permessage-deflate (200,000 runs each)", function()
		local out = H.sh(("cd %s && make -s fuzz FUZZ_ARGS=-runs=200000 2>&1; echo rc=$?"):format(H.quote(H.ROOT)))
		local _, done = out:gsub("Done 200000 runs", "")
		assert.equal(6, done, out)
		assert.matches("rc=0", out, 1, true)
	end)
end)
