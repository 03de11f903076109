-- leave and disconnect: ARGV[6..] room, peer, sid, how: 'leave' (an error
-- if not in the room), 'left' (hang-up) or 'lost' (transport dropped).
local room, peer, sid, how = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local rec = load(room, peer)
if not rec or not rec.on or rec.sid ~= sid then
  -- Replaced by a newer socket (perhaps on another node), or already gone.
  if how == 'leave' then fail('not-in-room', 'not in room `' .. room .. '`') end
  return finish({})
end
if how == 'lost' then go_away(room, peer, rec) else remove(room, peer, rec, 'left') end
return finish({})
