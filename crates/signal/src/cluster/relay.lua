-- relay: ARGV[6..] room, sender peer, sender sid, to ('' = everyone else),
-- event, payload (with `from` already set).
local room, peer, sid, to, ev, payload = ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local rec = load(room, peer)
if not rec or not rec.on or rec.sid ~= sid then
  fail('not-in-room', 'join room `' .. room .. '` before relaying to it')
  return finish({})
end
local sids = {}
if to ~= '' then
  local t = nil
  if to ~= peer then t = load(room, to) end
  if not t then
    fail('unknown-peer', 'no peer `' .. to .. '` in room `' .. room .. '`')
    return finish({})
  end
  deliver(room, to, t, ev, payload, sids)
else
  local all = redis.call('HGETALL', rkey(room))
  for i = 1, #all, 2 do
    if all[i] ~= peer then deliver(room, all[i], cjson.decode(all[i + 1]), ev, payload, sids) end
  end
end
send(ev, payload, sids)
return finish({})
