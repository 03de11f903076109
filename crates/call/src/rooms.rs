//! Asking a signaling server for a new room (`POST /api/rooms`).
//!
//! A server that requires invite tokens names new rooms itself and returns
//! the first token with the id; one that does not still names rooms, and a
//! server without the endpoint (the seed tutorial's) gets a room id made
//! here. Either way the caller ends up with a room to share.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ringlet_call::rooms::RoomError> {
//! let room = ringlet_call::rooms::create_room("http://127.0.0.1:3000").await?;
//! println!("room {} token {:?}", room.room, room.token);
//! # Ok(()) }
//! ```

use std::time::Duration;

use ringlet_proto::RoomId;

/// A room to share, and its invite token when the server signs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRoom {
    pub room: RoomId,
    pub token: Option<String>,
    /// Whether the server named the room (else it was made here).
    pub from_server: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    #[error("the server address is not valid: {0}")]
    BadUrl(String),
    #[error("cannot reach the server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the server is busy creating rooms for your address; wait a little and try again")]
    RateLimited,
    #[error("the server answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("the server's answer is not readable: {0}")]
    Unreadable(String),
}

const TIMEOUT: Duration = Duration::from_secs(10);

/// Asks `server` (a base URL such as `http://host:3000`) for a new room.
pub async fn create_room(server: &str) -> Result<NewRoom, RoomError> {
    let base = server.trim().trim_end_matches('/');
    let url = reqwest::Url::parse(&format!("{base}/api/rooms")).map_err(|e| RoomError::BadUrl(format!("{server}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(RoomError::BadUrl(format!("{server}: use http:// or https://")));
    }
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| RoomError::Unreachable { url: base.into(), reason: e.to_string() })?;
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_LENGTH, "0")
        .send()
        .await
        .map_err(|e| RoomError::Unreachable { url: base.into(), reason: e.to_string() })?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| RoomError::Unreachable { url: base.into(), reason: e.to_string() })?;
    read_answer(status, &body)
}

/// What an answer means; apart from the request so it tests without one.
fn read_answer(status: u16, body: &[u8]) -> Result<NewRoom, RoomError> {
    match status {
        200 | 201 => {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Created {
                room_id: RoomId,
                #[serde(default)]
                token: Option<String>,
            }
            let c: Created = serde_json::from_slice(body).map_err(|e| RoomError::Unreadable(e.to_string()))?;
            Ok(NewRoom { room: c.room_id, token: c.token, from_server: true })
        }
        // No such endpoint (a server from before it, or the seed's): it
        // cannot require tokens, so a room named here works.
        404 | 405 => Ok(NewRoom { room: local_room_id(), token: None, from_server: false }),
        429 => Err(RoomError::RateLimited),
        _ => {
            let message = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
            Err(RoomError::Refused { status, message })
        }
    }
}

/// A room id of 128 random bits, like the server's.
pub fn local_room_id() -> RoomId {
    RoomId::from_random(rand::random())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read() {
        let r = read_answer(201, br#"{"roomId":"abc","token":"1.x","expiresAt":5}"#).unwrap();
        assert_eq!((r.room.as_str(), r.token.as_deref(), r.from_server), ("abc", Some("1.x"), true));
        let r = read_answer(201, br#"{"roomId":"abc"}"#).unwrap();
        assert_eq!(r.token, None);
        let r = read_answer(404, b"Not found").unwrap();
        assert!(!r.from_server && r.room.as_str().len() == 22);
        assert!(matches!(read_answer(429, b"{}"), Err(RoomError::RateLimited)));
        let e = read_answer(500, br#"{"ok":false,"error":{"code":"internal","message":"boom"}}"#).unwrap_err();
        assert!(e.to_string().contains("500: boom"), "{e}");
        assert!(matches!(read_answer(201, br#"{"roomId":"../x"}"#), Err(RoomError::Unreadable(_))));
    }

    #[test]
    fn local_ids_are_distinct_and_valid() {
        let (a, b) = (local_room_id(), local_room_id());
        assert_ne!(a, b);
    }
}
