//! A fast path for the one message a call sends by the dozen: the relayed
//! ICE candidate, in the plain form every client writes.
//!
//! serde_json reads a candidate in about half a microsecond, and a burst of
//! candidates is most of what the signaling server does (see
//! BENCHMARKS.md). This scanner reads the common shape in one byte loop and
//! answers only when it is sure: it knows a subset of JSON (no escapes, no
//! duplicate or typed-wrong known fields, nesting up to [`MAX_DEPTH`]) and
//! returns `None` for anything outside it, valid or not. The caller then
//! asks serde_json, which stays the one judge of everything unusual and the
//! one wording of every error. So the scanner may be conservative, but it
//! must never accept what serde_json would refuse or read differently:
//! `tests/props.rs` holds the two against each other.

/// Nesting the scanner follows inside unknown fields before it gives up.
const MAX_DEPTH: u32 = 16;

/// What the scanner read from an `ice-candidate` payload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Candidate<'a> {
    pub room_id: &'a str,
    pub to: Option<&'a str>,
    /// Length of `candidate.candidate` (its text has no escapes).
    pub candidate_len: usize,
    /// Where the object ends in the text (just past its `}`).
    pub end: usize,
}

/// Reads an `ice-candidate` payload at the front of `text`: `{"roomId":
/// ..., "candidate": {"candidate": ...}, ...}` followed by anything.
pub(crate) fn ice_candidate(text: &str) -> Option<Candidate<'_>> {
    let mut s = Scanner { text, b: text.as_bytes(), i: 0 };
    let (mut room_id, mut to, mut candidate_len) = (None, None, None);
    s.object(|s, key| match key {
        "roomId" => once(&mut room_id, s.string()?),
        "to" => once(&mut to, s.string()?),
        "candidate" => once(&mut candidate_len, s.candidate()?),
        // A sender's own `from` is dropped by the slow path; `sdp` must
        // then parse as a description. Both are serde_json's.
        "from" | "sdp" => None,
        _ => s.value(1),
    })?;
    Some(Candidate { room_id: room_id?, to, candidate_len: candidate_len?, end: s.i })
}

/// Sets a field seen for the first time; `None` for a repeat (serde's
/// derive refuses a duplicate field).
fn once<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(v);
            Some(())
        }
    }
}

/// How far a string's closing quote is, if nothing comes before it that
/// the scanner leaves to serde_json: an escape (the quote found could be
/// an escaped one), or a raw control character (invalid JSON).
///
/// A candidate message has eight short strings (its keys among them) for
/// each long one. The first [`SHORT`] bytes are read eight at a time in
/// plain integer arithmetic, which is done before a SIMD search has set
/// up; a string longer than that has its quote found by SIMD, then the
/// bytes before it checked in one branch-free pass.
fn plain_string_len(b: &[u8]) -> Option<usize> {
    const SHORT: usize = 16;
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const TOPS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Each test marks the bytes it finds in their top bit; a borrow may
    // also mark bytes above a found one, never below, so the lowest mark
    // is a true find.
    let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v;
    let mut at = 0;
    while at < SHORT {
        let Some(chunk) = b.get(at..at + 8) else {
            // Fewer than eight bytes left: one at a time.
            return match b[at..].iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20) {
                Some(k) if b[at + k] == b'"' => Some(at + k),
                _ => None,
            };
        };
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let found = (zero_bytes(x ^ (ONES * u64::from(b'"')))
            | zero_bytes(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x))
            & TOPS;
        if found != 0 {
            let first = at + (found.trailing_zeros() / 8) as usize;
            return (b[first] == b'"').then_some(first);
        }
        at += 8;
    }
    let len = at + memchr::memchr(b'"', &b[at..])?;
    let clean = !b[at..len].iter().fold(false, |bad, &c| bad | (c < 0x20) | (c == b'\\'));
    clean.then_some(len)
}

struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// JSON's four whitespace bytes, nothing else.
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// A string without escapes, its text between the quotes.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let len = plain_string_len(&self.b[start..])?;
        self.i = start + len + 1;
        // Both ends are ASCII quotes: char boundaries.
        self.text.get(start..start + len)
    }

    /// The candidate object: `candidate` (required), `sdpMid`,
    /// `sdpMLineIndex`, `usernameFragment` typed as the server's parser
    /// types them, anything else skipped. The length of `candidate`.
    fn candidate(&mut self) -> Option<usize> {
        let (mut candidate, mut mid, mut index, mut ufrag) = (None, None, None, None);
        self.object(|s, key| match key {
            "candidate" => once(&mut candidate, s.string()?.len()),
            "sdpMid" => once(&mut mid, s.string_or_null()?),
            "sdpMLineIndex" => once(&mut index, s.u16_or_null()?),
            "usernameFragment" => once(&mut ufrag, s.string_or_null()?),
            _ => s.value(2),
        })?;
        candidate
    }

    fn string_or_null(&mut self) -> Option<()> {
        if self.peek()? == b'n' {
            self.literal(b"null")
        } else {
            self.string().map(drop)
        }
    }

    /// `null`, or an integer as a `u16` reads it: digits only, no leading
    /// zero, at most 65535. (A fraction or exponent after the digits makes
    /// it a float, which a `u16` refuses: the caller, expecting `,` or `}`
    /// next, gives up on it.)
    fn u16_or_null(&mut self) -> Option<()> {
        if self.peek()? == b'n' {
            return self.literal(b"null");
        }
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let digits = &self.b[start..self.i];
        if digits.is_empty() || digits.len() > 5 || (digits.len() > 1 && digits[0] == b'0') {
            return None;
        }
        let n: u32 = digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'));
        (n <= u32::from(u16::MAX)).then_some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// Skips any JSON value (within the subset), checking its grammar as
    /// serde_json does when it ignores a field.
    fn value(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' if depth >= MAX_DEPTH => None,
            b'{' => self.object(|s, _| s.value(depth + 1)),
            b'[' => self.items(b']', |s| s.value(depth + 1)),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// An object: `member` reads each value, given its key.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        if self.peek()? != b'{' {
            return None;
        }
        self.items(b'}', |s| {
            let key = s.string()?;
            s.ws();
            s.eat(b':')?;
            s.ws();
            member(s, key)
        })
    }

    /// From an opening bracket to its `close`: `item` reads each item
    /// (an array's value, an object's member), commas between them.
    fn items(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.i += 1;
        self.ws();
        if self.peek()? == close {
            self.i += 1;
            return Some(());
        }
        loop {
            self.ws();
            item(self)?;
            self.ws();
            match self.next()? {
                b',' => continue,
                c if c == close => return Some(()),
                _ => return None,
            }
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, not evaluated.
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.some_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            self.some_digits()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.i;
        self.digits();
        (self.i > start).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_shape_is_read() {
        let text = r#"{"roomId":"r1","t":12.5e-3,"candidate":{"candidate":"candidate:1 1 udp 9 192.0.2.1 5 typ host","sdpMid":"0","sdpMLineIndex":0}}]"#;
        let c = ice_candidate(text).unwrap();
        assert_eq!((c.room_id, c.to, c.candidate_len), ("r1", None, 40));
        assert_eq!(&text[c.end..], "]");
        let spaced = "{ \"to\" : \"bob\" ,\n\"candidate\":{\"candidate\":\"\",\"sdpMid\":null,\"x\":[1,{\"y\":[]},true,false,null,-0.5E+2]},\r\t\"roomId\":\"é\"}";
        let c = ice_candidate(spaced).unwrap();
        assert_eq!((c.room_id, c.to, c.candidate_len, c.end), ("é", Some("bob"), 0, spaced.len()));
    }

    #[test]
    fn a_string_ends_at_its_first_quote_unless_an_escape_or_control_comes_first() {
        // The bytewise definition, against every length up to three chunks
        // and every place for each byte that matters, among ASCII and the
        // bytes of multi-byte characters (whose top bits are set).
        let reference = |b: &[u8]| match b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20) {
            Some(i) if b[i] == b'"' => Some(i),
            _ => None,
        };
        for len in 0..40 {
            for filler in [b'a', 0x7f, 0x80, 0xc3, 0xff, b' ', b'!', b'#', b'[', b']'] {
                for special in [b'"', b'\\', 0x00, 0x1f, 0x20, 0x21, 0x5b, 0x5d] {
                    for at in 0..=len {
                        let mut b = vec![filler; len];
                        if at < len {
                            b[at] = special;
                        }
                        assert_eq!(plain_string_len(&b), reference(&b), "{b:?}");
                        // A quote after it, and one before.
                        b.push(b'"');
                        assert_eq!(plain_string_len(&b), reference(&b), "{b:?}");
                        b.insert(0, b'"');
                        assert_eq!(plain_string_len(&b), Some(0), "{b:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn anything_unusual_is_left_to_serde() {
        for text in [
            r#"{"roomId":"r\"1","candidate":{"candidate":"c"}}"#,           // an escape
            r#"{"roomId":"r1","roomId":"r2","candidate":{"candidate":"c"}}"#, // a repeat
            r#"{"roomId":"r1","candidate":{"candidate":"c","candidate":"d"}}"#,
            r#"{"roomId":"r1","from":"x","candidate":{"candidate":"c"}}"#,
            r#"{"roomId":"r1","sdp":null,"candidate":{"candidate":"c"}}"#,
            r#"{"roomId":null,"candidate":{"candidate":"c"}}"#,
            r#"{"roomId":"r1","candidate":{"sdpMid":"0"}}"#,                  // no candidate
            r#"{"roomId":"r1","candidate":{"candidate":"c","sdpMLineIndex":1.0}}"#,
            r#"{"roomId":"r1","candidate":{"candidate":"c","sdpMLineIndex":65536}}"#,
            r#"{"roomId":"r1","candidate":{"candidate":"c","sdpMLineIndex":01}}"#,
            r#"{"roomId":"r1","candidate":{"candidate":"c","sdpMLineIndex":-1}}"#,
            r#"{"roomId":"r1","candidate":{"candidate":"c"},"n":01}"#,
            r#"{"roomId":"r1","candidate":{"candidate":"c"},"n":1.}"#,
            r#"{"roomId":"r1","candidate":{"candidate":"c"},"n":[1,]}"#,
            r#"{"roomId":"r1","candidate":{"candidate":"c"},}"#,
            "{\"roomId\":\"r\u{1}\",\"candidate\":{\"candidate\":\"c\"}}",
            r#"{"roomId":"r1","candidate":{"candidate":"c"}"#,                 // cut short
            r#"{"candidate":{"candidate":"c"}}"#,
            r#"{}"#,
        ] {
            assert_eq!(ice_candidate(text), None, "{text}");
        }
        let deep = format!(r#"{{"roomId":"r","candidate":{{"candidate":"c"}},"d":{}1{}}}"#, "[".repeat(20), "]".repeat(20));
        assert_eq!(ice_candidate(&deep), None);
    }
}
