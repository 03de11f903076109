-- flush: ARGV[6..] room, peer, sid. The node has emitted what join (or the
-- last flush) handed it. Tail: h, h "event\npayload" held meanwhile, to
-- emit and flush again; when none, the peer is plainly online from now
-- on, and later messages go straight to its socket, after all of these.
local room, peer, sid = ARGV[6], ARGV[7], ARGV[8]
local rec = load(room, peer)
if not rec or not rec.on or rec.sid ~= sid or not rec.fl then return finish({0}) end
local held = {}
if rec.hn > 0 then
  held = redis.call('LRANGE', hkey(room, peer), 0, -1)
  redis.call('DEL', hkey(room, peer))
  redis.call('DECRBY', P .. 'held', rec.hn)
  rec.hn, rec.hb = 0, 0
else
  rec.fl = nil
end
store(room, peer, rec)
local tail = {#held}
for _, h in ipairs(held) do table.insert(tail, h) end
return finish(tail)
