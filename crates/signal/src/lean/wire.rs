//! Sans-IO codecs of the lean transport: WebSocket frames (RFC 6455, server
//! side), Engine.IO v4 packets and Socket.IO v5 packets. No sockets here:
//! bytes in, messages out, so every rule is tested without a network.

use std::cell::Cell;
use std::fmt;

/// Why a connection is closed. A WebSocket close code goes with each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WsError {
    /// Broke a framing rule (RFC 6455 section 5): 1002.
    Protocol(&'static str),
    /// A message over the size limit: 1009. Refused from its header, before
    /// it is buffered.
    TooBig,
    /// A text message that is not UTF-8: 1007.
    NotUtf8,
}

impl WsError {
    pub(crate) fn close_code(self) -> u16 {
        match self {
            WsError::Protocol(_) => 1002,
            WsError::TooBig => 1009,
            WsError::NotUtf8 => 1007,
        }
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::Protocol(why) => write!(f, "websocket protocol error: {why}"),
            WsError::TooBig => f.write_str("message too large"),
            WsError::NotUtf8 => f.write_str("text message is not UTF-8"),
        }
    }
}

/// One complete WebSocket message (fragments joined) or control frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WsMessage<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
    Ping(&'a [u8]),
    Pong,
    /// The peer's close code, if it gave one.
    Close(Option<u16>),
}

/// Whether the caller wants more messages from this read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Stop,
}

/// Reads client frames. Holds only what a read left incomplete (usually
/// nothing) and a fragmented message in progress, so an idle connection
/// costs no buffer: reads land in a scratch buffer the caller owns.
#[derive(Default)]
pub(crate) struct Decoder {
    partial: Vec<u8>,
    /// A fragmented message so far: whether it is text, and its bytes.
    fragments: Option<(bool, Vec<u8>)>,
}

const OP_CONT: u8 = 0;
pub(crate) const OP_TEXT: u8 = 1;
const OP_BINARY: u8 = 2;
pub(crate) const OP_CLOSE: u8 = 8;
const OP_PING: u8 = 9;
pub(crate) const OP_PONG: u8 = 10;

/// A frame header: where its payload is and how to read it.
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    header_len: usize,
    payload_len: usize,
}

/// `Ok(None)`: not enough bytes yet for the header.
fn parse_header(buf: &[u8], max: usize) -> Result<Option<Header>, WsError> {
    let [b0, b1, ..] = *buf else { return Ok(None) };
    if b0 & 0x70 != 0 {
        // No extension was negotiated (permessage-deflate is declined).
        return Err(WsError::Protocol("reserved bits set"));
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0f;
    if b1 & 0x80 == 0 {
        return Err(WsError::Protocol("client frames must be masked"));
    }
    let (len, at) = match b1 & 0x7f {
        126 => match buf.get(2..4) {
            Some(b) => (u16::from_be_bytes([b[0], b[1]]) as u64, 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => (u64::from_be_bytes(b.try_into().expect("8 bytes")), 10),
            None => return Ok(None),
        },
        n => (n as u64, 2),
    };
    if len >> 63 != 0 {
        return Err(WsError::Protocol("a 64-bit length with its top bit set"));
    }
    let is_control = opcode & 0x08 != 0;
    if is_control && (!fin || len > 125) {
        return Err(WsError::Protocol("control frames must be whole and short"));
    }
    if !matches!(opcode, OP_CONT | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG) {
        return Err(WsError::Protocol("unknown opcode"));
    }
    if len > max as u64 {
        return Err(WsError::TooBig);
    }
    let Some(mask) = buf.get(at..at + 4) else { return Ok(None) };
    Ok(Some(Header {
        fin,
        opcode,
        mask: mask.try_into().expect("4 bytes"),
        header_len: at + 4,
        payload_len: len as usize,
    }))
}

fn unmask(data: &mut [u8], mask: [u8; 4]) {
    // Eight bytes at a time: this runs over every byte a client sends.
    let m = u32::from_ne_bytes(mask) as u64;
    let m8 = (m << 32 | m).to_ne_bytes();
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes((&*c).try_into().expect("8 bytes")) ^ u64::from_ne_bytes(m8);
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

impl Decoder {
    /// Bytes held between reads.
    #[cfg(test)]
    fn buffered(&self) -> usize {
        self.partial.len() + self.fragments.as_ref().map_or(0, |(_, f)| f.len())
    }

    /// Capacity held between reads.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.partial.capacity() + self.fragments.as_ref().map_or(0, |(_, f)| f.capacity())
    }

    /// Decodes what `data` completes, calling `on` for each message in
    /// order. `data` is unmasked in place. Messages over `max` bytes are an
    /// error; `max` is read at each frame, so `on` may change it for the
    /// frames after its message. Stops early when `on` says [`Flow::Stop`].
    pub(crate) fn feed(
        &mut self,
        data: &mut [u8],
        max: &Cell<usize>,
        mut on: impl FnMut(WsMessage<'_>) -> Flow,
    ) -> Result<Flow, WsError> {
        if self.partial.is_empty() {
            let (used, flow) = decode(&mut self.fragments, data, max, &mut on)?;
            if flow == Flow::Continue {
                self.partial.extend_from_slice(&data[used..]);
            }
            return Ok(flow);
        }
        let mut buf = std::mem::take(&mut self.partial);
        buf.extend_from_slice(data);
        let (used, flow) = decode(&mut self.fragments, &mut buf, max, &mut on)?;
        buf.drain(..used);
        // A large message passed: give its buffer back, keeping what is
        // left of the next frame (a client could otherwise pin megabytes
        // by always leaving a byte of one behind). Not for a buffer a read
        // or two fills: a burst leaves a frame's head behind after most
        // 64 KiB reads, and would reallocate twice a read.
        if buf.is_empty() && buf.capacity() > 4096 {
            buf = Vec::new();
        } else if buf.capacity() > 256 * 1024 && buf.len() <= buf.capacity() / 4 {
            buf.shrink_to(buf.len());
        }
        self.partial = buf;
        Ok(flow)
    }
}

/// Decodes whole frames from `buf`; returns how many bytes were used.
fn decode(
    fragments: &mut Option<(bool, Vec<u8>)>,
    buf: &mut [u8],
    max: &Cell<usize>,
    on: &mut impl FnMut(WsMessage<'_>) -> Flow,
) -> Result<(usize, Flow), WsError> {
    let mut at = 0;
    loop {
        let Some(h) = parse_header(&buf[at..], max.get())? else { return Ok((at, Flow::Continue)) };
        let end = at + h.header_len + h.payload_len;
        if buf.len() < end {
            return Ok((at, Flow::Continue));
        }
        let payload = &mut buf[at + h.header_len..end];
        unmask(payload, h.mask);
        at = end;
        let flow = match h.opcode {
            OP_TEXT | OP_BINARY if fragments.is_some() => {
                return Err(WsError::Protocol("a new message inside a fragmented one"))
            }
            OP_TEXT | OP_BINARY if h.fin => message(h.opcode == OP_TEXT, payload, on)?,
            OP_TEXT | OP_BINARY => {
                *fragments = Some((h.opcode == OP_TEXT, payload.to_vec()));
                Flow::Continue
            }
            OP_CONT => {
                let Some((_, so_far)) = fragments.as_mut() else {
                    return Err(WsError::Protocol("a continuation with nothing to continue"));
                };
                if so_far.len() + payload.len() > max.get() {
                    return Err(WsError::TooBig);
                }
                so_far.extend_from_slice(payload);
                if h.fin {
                    let (text, whole) = fragments.take().expect("checked above");
                    message(text, &whole, on)?
                } else {
                    Flow::Continue
                }
            }
            OP_PING => on(WsMessage::Ping(payload)),
            OP_PONG => on(WsMessage::Pong),
            OP_CLOSE => {
                on(WsMessage::Close(close_code(payload)?));
                Flow::Stop
            }
            _ => unreachable!("opcodes are checked in parse_header"),
        };
        if flow == Flow::Stop {
            return Ok((at, Flow::Stop));
        }
    }
}

/// A close frame's status code, if it has one: RFC 6455 §5.5.1 and §7.4
/// (no code, or a code a peer may send, then a UTF-8 reason).
fn close_code(payload: &[u8]) -> Result<Option<u16>, WsError> {
    let Some((code, reason)) = payload.split_first_chunk::<2>() else {
        return match payload.len() {
            0 => Ok(None),
            _ => Err(WsError::Protocol("a close frame's code takes two bytes")),
        };
    };
    let code = u16::from_be_bytes(*code);
    // 1004-1006 and 1015 are reserved (never sent), 1016-2999 unassigned.
    if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
        return Err(WsError::Protocol("a close code no peer may send"));
    }
    std::str::from_utf8(reason).map_err(|_| WsError::NotUtf8)?;
    Ok(Some(code))
}

fn message(text: bool, payload: &[u8], on: &mut impl FnMut(WsMessage<'_>) -> Flow) -> Result<Flow, WsError> {
    Ok(if text {
        on(WsMessage::Text(std::str::from_utf8(payload).map_err(|_| WsError::NotUtf8)?))
    } else {
        on(WsMessage::Binary(payload))
    })
}

/// Appends one unmasked server frame holding `parts` back to back.
pub(crate) fn frame(out: &mut Vec<u8>, opcode: u8, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.reserve(len + 10);
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(len as u8);
    } else if len <= u16::MAX as usize {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    for p in parts {
        out.extend_from_slice(p);
    }
}


/// The size [`frame`] writes for a payload of `len` bytes.
pub(crate) fn frame_len(len: usize) -> usize {
    len + if len < 126 {
        2
    } else if len <= u16::MAX as usize {
        4
    } else {
        10
    }
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub(crate) fn accept_key(key: &[u8]) -> String {
    use base64::Engine;
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(key);
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

// ------------------------------------------------------------- Engine.IO v4

/// An Engine.IO packet from a client, as one WebSocket text message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Eio<'a> {
    Close,
    Ping,
    Pong,
    Message(&'a str),
    /// Open, upgrade, noop or junk: not valid from a client on a websocket.
    Bad,
}

pub(crate) fn parse_eio(text: &str) -> Eio<'_> {
    match text.as_bytes().first() {
        Some(b'1') => Eio::Close,
        Some(b'2') => Eio::Ping,
        Some(b'3') => Eio::Pong,
        Some(b'4') => Eio::Message(&text[1..]),
        _ => Eio::Bad,
    }
}

// ------------------------------------------------------------- Socket.IO v5

/// A Socket.IO packet, borrowed from its text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Sio<'a> {
    pub(crate) kind: SioKind,
    pub(crate) ns: &'a str,
    /// Binary attachments announced (binary event and ack only).
    pub(crate) attachments: usize,
    pub(crate) ack: Option<i64>,
    /// The JSON after the header (may be empty).
    pub(crate) data: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SioKind {
    Connect,
    Disconnect,
    Event,
    Ack,
    ConnectError,
    BinaryEvent,
    BinaryAck,
}

/// Parses `<type>[<attachments>-][/<ns>,][<ack id>]<json>`. `None` for
/// what no Socket.IO client sends: the connection is closed for it, as
/// Socket.IO servers do.
pub(crate) fn parse_sio(text: &str) -> Option<Sio<'_>> {
    let b = text.as_bytes();
    let kind = match b.first()? {
        b'0' => SioKind::Connect,
        b'1' => SioKind::Disconnect,
        b'2' => SioKind::Event,
        b'3' => SioKind::Ack,
        b'4' => SioKind::ConnectError,
        b'5' => SioKind::BinaryEvent,
        b'6' => SioKind::BinaryAck,
        _ => return None,
    };
    let mut at = 1;
    let mut attachments = 0;
    if matches!(kind, SioKind::BinaryEvent | SioKind::BinaryAck) {
        let digits = b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || b.get(at + digits) != Some(&b'-') {
            return None;
        }
        attachments = text[at..at + digits].parse().ok()?;
        at += digits + 1;
    }
    let ns = if b.get(at) == Some(&b'/') {
        let end = b[at..].iter().position(|&c| c == b',').map_or(b.len(), |p| at + p);
        let ns = &text[at..end];
        at = (end + 1).min(b.len());
        ns
    } else {
        "/"
    };
    let digits = b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut ack = None;
    if digits > 0 && matches!(b.get(at + digits), Some(b'[' | b'{')) {
        ack = Some(text[at..at + digits].parse().ok()?);
        at += digits;
    }
    if matches!(kind, SioKind::Ack | SioKind::BinaryAck) && ack.is_none() {
        return None;
    }
    Some(Sio { kind, ns, attachments, ack, data: &text[at..] })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: masked, as browsers send them.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len <= 65535 {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[derive(Debug, PartialEq)]
    enum Got {
        Text(String),
        Binary(Vec<u8>),
        Ping(Vec<u8>),
        Pong,
        Close(Option<u16>),
    }

    fn collect(dec: &mut Decoder, data: &[u8], max: usize) -> Result<Vec<Got>, WsError> {
        let mut got = vec![];
        let mut data = data.to_vec();
        dec.feed(&mut data, &Cell::new(max), |m| {
            got.push(match m {
                WsMessage::Text(t) => Got::Text(t.into()),
                WsMessage::Binary(b) => Got::Binary(b.into()),
                WsMessage::Ping(p) => Got::Ping(p.into()),
                WsMessage::Pong => Got::Pong,
                WsMessage::Close(c) => Got::Close(c),
            });
            Flow::Continue
        })?;
        Ok(got)
    }

    #[test]
    fn frames_of_every_length_class_decode_byte_by_byte_and_whole() {
        for len in [0, 1, 7, 8, 9, 125, 126, 127, 65535, 65536, 70000] {
            let text: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            let wire = client_frame(true, OP_TEXT, text.as_bytes(), [1, 2, 3, 250]);
            let mut whole = Decoder::default();
            assert_eq!(collect(&mut whole, &wire, 1 << 20).unwrap(), vec![Got::Text(text.clone())], "len {len}");
            assert_eq!(whole.buffered(), 0);
            if len > 300 {
                continue; // byte by byte is quadratic in the test, not in use
            }
            let mut dribble = Decoder::default();
            let mut got = vec![];
            for b in &wire {
                got.extend(collect(&mut dribble, &[*b], 1 << 20).unwrap());
            }
            assert_eq!(got, vec![Got::Text(text)], "len {len} byte by byte");
        }
    }

    #[test]
    fn many_frames_in_one_read_come_out_in_order_with_the_rest_kept() {
        let mut wire = vec![];
        for i in 0..5 {
            wire.extend(client_frame(true, OP_TEXT, format!("m{i}").as_bytes(), [9, 8, 7, 6]));
        }
        let split = wire.len() - 3;
        let mut dec = Decoder::default();
        let got = collect(&mut dec, &wire[..split], 100).unwrap();
        assert_eq!(got, (0..4).map(|i| Got::Text(format!("m{i}"))).collect::<Vec<_>>());
        assert_eq!(dec.buffered(), 5, "the last frame's first five bytes wait");
        assert_eq!(collect(&mut dec, &wire[split..], 100).unwrap(), vec![Got::Text("m4".into())]);
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn a_large_message_leaves_no_large_buffer_behind() {
        // A 1 MB message in 64 KiB reads, then one byte of the next frame
        // (what a client keeping the buffer pinned would send).
        let big = "x".repeat(1 << 20);
        let mut wire = client_frame(true, OP_TEXT, big.as_bytes(), [1, 2, 3, 4]);
        wire.push(0x81);
        let mut dec = Decoder::default();
        let mut got = vec![];
        for chunk in wire.chunks(64 * 1024) {
            got.extend(collect(&mut dec, chunk, 2 << 20).unwrap());
        }
        assert_eq!(got, vec![Got::Text(big)]);
        assert_eq!(dec.buffered(), 1);
        assert!(dec.held() <= 4096, "{} bytes held for one", dec.held());
    }

    #[test]
    fn fragments_join_and_control_frames_may_interleave() {
        let mut wire = client_frame(false, OP_TEXT, b"hel", [1, 1, 1, 1]);
        wire.extend(client_frame(true, OP_PING, b"p", [2, 2, 2, 2]));
        wire.extend(client_frame(false, OP_CONT, b"lo ", [3, 3, 3, 3]));
        wire.extend(client_frame(true, OP_CONT, b"world", [4, 4, 4, 4]));
        wire.extend(client_frame(true, OP_BINARY, &[0, 255], [5, 5, 5, 5]));
        wire.extend(client_frame(true, OP_PONG, b"", [5, 5, 5, 5]));
        wire.extend(client_frame(true, OP_CLOSE, &1000u16.to_be_bytes(), [6, 6, 6, 6]));
        wire.extend(client_frame(true, OP_TEXT, b"after close", [6, 6, 6, 6]));
        let got = collect(&mut Decoder::default(), &wire, 100).unwrap();
        assert_eq!(
            got,
            vec![
                Got::Ping(b"p".to_vec()),
                Got::Text("hello world".into()),
                Got::Binary(vec![0, 255]),
                Got::Pong,
                Got::Close(Some(1000)),
            ],
            "nothing is read after a close"
        );
    }

    #[test]
    fn rule_breakers_are_errors_not_panics() {
        let cases: Vec<(Vec<u8>, WsError)> = vec![
            (vec![0x81, 0x05, b'h', b'e', b'l', b'l', b'o'], WsError::Protocol("client frames must be masked")),
            (vec![0xC1, 0x80, 0, 0, 0, 0], WsError::Protocol("reserved bits set")),
            (vec![0x83, 0x80, 0, 0, 0, 0], WsError::Protocol("unknown opcode")),
            (client_frame(false, OP_PING, b"", [0; 4]), WsError::Protocol("control frames must be whole and short")),
            (client_frame(true, OP_CONT, b"x", [0; 4]), WsError::Protocol("a continuation with nothing to continue")),
            (client_frame(true, OP_TEXT, &[0xff, 0xfe], [0; 4]), WsError::NotUtf8),
            // A 2^63-byte header is refused before anything is buffered;
            // a length with the top bit set is not even that.
            (vec![0x82, 0xFF, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], WsError::TooBig),
            (vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0], WsError::Protocol("a 64-bit length with its top bit set")),
            (client_frame(true, OP_CLOSE, &[0x03], [0; 4]), WsError::Protocol("a close frame's code takes two bytes")),
            (client_frame(true, OP_CLOSE, &999u16.to_be_bytes(), [0; 4]), WsError::Protocol("a close code no peer may send")),
            (client_frame(true, OP_CLOSE, &1005u16.to_be_bytes(), [0; 4]), WsError::Protocol("a close code no peer may send")),
            (client_frame(true, OP_CLOSE, &5000u16.to_be_bytes(), [0; 4]), WsError::Protocol("a close code no peer may send")),
            (client_frame(true, OP_CLOSE, &[0x03, 0xe8, 0xff], [0; 4]), WsError::NotUtf8),
            (client_frame(true, OP_TEXT, &[b'a'; 101], [0; 4]), WsError::TooBig),
        ];
        for (wire, want) in cases {
            assert_eq!(collect(&mut Decoder::default(), &wire, 100), Err(want));
        }
        let mut wire = client_frame(false, OP_TEXT, &[b'a'; 60], [0; 4]);
        wire.extend(client_frame(true, OP_CONT, &[b'a'; 60], [0; 4]));
        assert_eq!(collect(&mut Decoder::default(), &wire, 100), Err(WsError::TooBig), "fragments add up");
        let mut wire = client_frame(false, OP_TEXT, b"a", [0; 4]);
        wire.extend(client_frame(true, OP_TEXT, b"b", [0; 4]));
        assert!(collect(&mut Decoder::default(), &wire, 100).is_err(), "a message inside a fragmented one");
    }

    #[test]
    fn a_close_frame_gives_its_code_if_it_has_one() {
        let close = |payload: &[u8]| collect(&mut Decoder::default(), &client_frame(true, OP_CLOSE, payload, [9; 4]), 100);
        assert_eq!(close(b""), Ok(vec![Got::Close(None)]));
        assert_eq!(close(&1000u16.to_be_bytes()), Ok(vec![Got::Close(Some(1000))]));
        assert_eq!(close(&[&4001u16.to_be_bytes()[..], "bye é".as_bytes()].concat()), Ok(vec![Got::Close(Some(4001))]));
    }

    #[test]
    fn random_input_never_panics_and_random_splits_change_nothing() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..2000 {
            // Junk: an error or some messages, never a panic.
            let junk: Vec<u8> = (0..rng.random_range(0..64)).map(|_| rng.random()).collect();
            let _ = collect(&mut Decoder::default(), &junk, 1 << 16);
            // Valid frames (fragmented or not, with control frames between)
            // cut at random points decode the same as in one piece.
            let mut wire = vec![];
            let mut want = vec![];
            for _ in 0..rng.random_range(1..6) {
                let len = rng.random_range(0..300);
                let text: String = (0..len).map(|_| rng.random_range(b'a'..=b'z') as char).collect();
                let mask = rng.random();
                if rng.random_bool(0.3) && len > 1 {
                    let cut = rng.random_range(1..len);
                    wire.extend(client_frame(false, OP_TEXT, &text.as_bytes()[..cut], mask));
                    wire.extend(client_frame(true, OP_PING, b"x", mask));
                    want.push(Got::Ping(b"x".to_vec()));
                    wire.extend(client_frame(true, OP_CONT, &text.as_bytes()[cut..], mask));
                } else {
                    wire.extend(client_frame(true, OP_TEXT, text.as_bytes(), mask));
                }
                want.push(Got::Text(text));
            }
            let mut dec = Decoder::default();
            let mut got = vec![];
            let mut at = 0;
            while at < wire.len() {
                let n = rng.random_range(1..=(wire.len() - at).min(200));
                got.extend(collect(&mut dec, &wire[at..at + n], 1 << 16).unwrap());
                at += n;
            }
            assert_eq!(got, want);
            assert_eq!(dec.buffered(), 0);
        }
    }

    #[test]
    fn unmask_matches_the_bytewise_definition() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37) as u8).collect();
            let mut fast = data.clone();
            unmask(&mut fast, mask);
            let slow: Vec<u8> = data.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect();
            assert_eq!(fast, slow);
        }
    }

    #[test]
    fn server_frames_have_the_right_headers() {
        for len in [0, 125, 126, 65535, 65536] {
            let mut out = vec![];
            frame(&mut out, OP_TEXT, &[&vec![b'x'; len]]);
            assert_eq!(out.len(), frame_len(len));
            assert_eq!(out[0], 0x81);
            // Our own decoder reads it back once masked (a zero mask).
            let mut masked = out.clone();
            masked[1] |= 0x80;
            let at = frame_len(len) - len;
            masked.splice(at..at, [0u8; 4]);
            let got = collect(&mut Decoder::default(), &masked, 1 << 20).unwrap();
            assert_eq!(got, vec![Got::Text("x".repeat(len))]);
        }
    }

    #[test]
    fn accept_key_is_the_rfc_example() {
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn socketio_packets_parse_as_the_clients_write_them() {
        let p = |s| parse_sio(s);
        assert_eq!(
            p("0/signaling,"),
            Some(Sio { kind: SioKind::Connect, ns: "/signaling", attachments: 0, ack: None, data: "" })
        );
        assert_eq!(p("0/signaling,{\"token\":1}").unwrap().data, "{\"token\":1}");
        assert_eq!(p("0").unwrap().ns, "/");
        assert_eq!(p("1/signaling,").unwrap().kind, SioKind::Disconnect);
        assert_eq!(p("1/signaling").unwrap().ns, "/signaling", "no trailing comma at the end");
        let e = p("2/signaling,12[\"join\",\"r\"]").unwrap();
        assert_eq!((e.kind, e.ack, e.data), (SioKind::Event, Some(12), "[\"join\",\"r\"]"));
        let e = p("2[\"x\"]").unwrap();
        assert_eq!((e.ns, e.ack, e.data), ("/", None, "[\"x\"]"));
        let b = p("52-/signaling,7[\"x\",{\"_placeholder\":true,\"num\":0}]").unwrap();
        assert_eq!((b.kind, b.attachments, b.ack), (SioKind::BinaryEvent, 2, Some(7)));
        assert_eq!(p("3/signaling,5[]").unwrap().ack, Some(5));
        for bad in ["", "7", "x", "5/signaling,[]", "5x-[]", "3/signaling,[]", "2/s,99999999999999999999[1]"] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
        // Digits not followed by JSON are data, not an ack id.
        assert_eq!(p("2/signaling,42").unwrap().data, "42");
    }

    #[test]
    fn engineio_packets() {
        assert_eq!(parse_eio("3"), Eio::Pong);
        assert_eq!(parse_eio("2"), Eio::Ping);
        assert_eq!(parse_eio("1"), Eio::Close);
        assert_eq!(parse_eio("40/signaling,"), Eio::Message("0/signaling,"));
        for bad in ["", "0{}", "5", "6", "9", "é"] {
            assert_eq!(parse_eio(bad), Eio::Bad);
        }
    }
}
