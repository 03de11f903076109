-- join: ARGV[6..] room, peer ('' = let the server choose), name ('' = none),
-- sid, node, max peers, a fresh peer id, max rooms (cluster-wide). Tail: peer, polite (0/1),
-- how (0 new or same socket, 1 resumed from away, 2 replaced a live socket),
-- n, n pairs (peer, name or ''), h, h held "event\npayload".
local room, want, name, sid, node = ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local maxp, fresh, maxrooms = tonumber(ARGV[11]), ARGV[12], tonumber(ARGV[13])

local all = redis.call('HGETALL', rkey(room))
-- Limits first, so a refused join leaves no empty room behind.
if #all == 0 and redis.call('SCARD', P .. 'rooms') >= maxrooms then
  fail('limit-exceeded', 'the server has as many rooms as it can hold; try again later')
  return finish({})
end
local recs, mine, byid = {}, nil, nil
for i = 1, #all, 2 do
  local r = cjson.decode(all[i + 1])
  table.insert(recs, {all[i], r})
  if r.on and r.sid == sid then mine = #recs end
  if all[i] == want then byid = #recs end
end

local function accepted(idx, how, held)
  local me = recs[idx]
  local polite = 0
  local tail = {me[1], 0, how, #recs - 1}
  for j, e in ipairs(recs) do
    if j ~= idx then
      table.insert(tail, e[1]); table.insert(tail, e[2].name or '')
      if e[2].seq < me[2].seq then polite = 1 end
    end
  end
  tail[2] = polite
  table.insert(tail, #held)
  for _, h in ipairs(held) do table.insert(tail, h) end
  return tail
end

if mine then
  if want == '' or want == recs[mine][1] then return finish(accepted(mine, 0, {})) end
  fail('peer-id-taken', 'this connection already speaks as another peer in this room')
  return finish({})
end

if byid then
  local rec = recs[byid][2]
  local held, how = {}, 2
  if rec.on then
    -- A rejoin while the old socket still looks alive (on any node): the
    -- client knows better. The old socket stops speaking for this peer.
    redis.call('SREM', okey(rec.node), join3(room, want, rec.sid))
  else
    how = 1
    redis.call('ZREM', P .. 'deadlines', join3(room, want, rec.epoch))
    redis.call('DECR', P .. 'away')
  end
  if rec.hn > 0 then
    held = redis.call('LRANGE', hkey(room, want), 0, -1)
    redis.call('DEL', hkey(room, want))
    redis.call('DECRBY', P .. 'held', rec.hn)
  end
  -- Handed over below, after the ack; until the node confirms (flush.lua),
  -- new messages are held behind them, so none can overtake them.
  rec.fl = (#held > 0) or nil
  rec.on, rec.sid, rec.node, rec.epoch, rec.hn, rec.hb = true, sid, node, nil, 0, 0
  if name ~= '' then rec.name = name end
  store(room, want, rec)
  redis.call('SADD', okey(node), join3(room, want, sid))
  return finish(accepted(byid, how, held))
end

if #recs >= maxp then
  fail('room-full', 'room is full (' .. maxp .. ' of ' .. maxp .. ' peers)')
  return finish({})
end
local id, res = want, true
if id == '' then id, res = fresh, false end
local rec = {seq = redis.call('INCR', P .. 'seq'), on = true, sid = sid, node = node, res = res, hn = 0, hb = 0}
if name ~= '' then rec.name = name end
store(room, id, rec)
table.insert(recs, {id, rec})
redis.call('SADD', P .. 'rooms', room)
redis.call('SADD', okey(node), join3(room, id, sid))
broadcast(room, id, 'peer-joined', cjson.encode({roomId = room, peerId = id, name = rec.name}))
return finish(accepted(#recs, 0, {}))
