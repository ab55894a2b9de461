-- LÖVE's configuration for the wsbeat example (read before main.lua).
-- WSBEAT_LOVE_HEADLESS=1: no window and no graphics, for machines without
-- a display (love.draw is then never called; love.load, love.update and
-- love.quit run as usual). See README.md.
-- luacheck: globals love
function love.conf(t)
	t.identity = "wsbeat-love-example"
	t.version = "11.4"
	t.window.title = "wsbeat: a WebSocket in a LÖVE game loop"
	t.window.width = 800
	t.window.height = 600
	t.window.vsync = 1
	-- this example plays no sound and reads no joystick: leaving these out
	-- also keeps a machine without a sound card quiet
	t.modules.audio = false
	t.modules.sound = false
	t.modules.joystick = false
	t.modules.physics = false
	t.modules.video = false
	if os.getenv("WSBEAT_LOVE_HEADLESS") == "1" then
		t.window = false
		t.modules.window = false
		t.modules.graphics = false
	end
end
