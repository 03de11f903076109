-- relay: ARGV[6..] room, sender peer, sender sid, to ('' = everyone else),
-- event, payload (with `from` already set). One read of the room (a few
-- peers) serves both the sender check and the targets.
local room, peer, sid, to, ev, payload = ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local all = redis.call('HGETALL', rkey(room))
local me, target = nil, nil
for i = 1, #all, 2 do
  if all[i] == peer then me = cjson.decode(all[i + 1]) end
end
if not me or not me.on or me.sid ~= sid then
  fail('not-in-room', 'join room `' .. room .. '` before relaying to it')
  return finish({})
end
local sids = {}
if to ~= '' then
  for i = 1, #all, 2 do
    if all[i] == to and to ~= peer then target = cjson.decode(all[i + 1]) end
  end
  if not target then
    fail('unknown-peer', 'no peer `' .. to .. '` in room `' .. room .. '`')
    return finish({})
  end
  deliver(room, to, target, ev, payload, sids)
else
  for i = 1, #all, 2 do
    if all[i] ~= peer then deliver(room, all[i], cjson.decode(all[i + 1]), ev, payload, sids) end
  end
end
send(ev, payload, sids)
return finish({})
