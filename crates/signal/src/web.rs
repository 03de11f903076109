//! The web client: the same `ui/` the desktop app shows, served so that a
//! room link (`/r/<room>`) opens in any browser. The browser then joins
//! through its own `getUserMedia` and `RTCPeerConnection`, signaling over
//! this server's `/signaling` namespace (same origin, so no CORS setup).
//!
//! Files come from a table compiled into the binary (see `build.rs`): a
//! request is a lookup of its path in that table, so no request can name a
//! file outside it, however it spells `..`. `--web-root` serves a directory
//! instead (for working on the UI without rebuilding); there every path
//! segment is checked and the resolved file must stay inside the root.

use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

mod assets {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

/// Where the web client comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WebClient {
    /// The `ui/` compiled into this binary.
    #[default]
    Embedded,
    /// Files under this directory, read on each request.
    Dir(PathBuf),
    /// No web client: signaling, `/healthz` and `/metrics` only.
    Off,
}

/// The policy for every page served: scripts and styles only from this
/// server, media from the browser's own devices, network only back to this
/// origin (Socket.IO over HTTP and WebSocket), never framed.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
media-src 'self' blob: mediastream:; connect-src 'self'; manifest-src 'self'; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

/// Routes for the web client, to be merged into the server's router.
pub fn routes(client: WebClient) -> Router {
    if client == WebClient::Off {
        return Router::new();
    }
    let client = std::sync::Arc::new(client);
    Router::new()
        .route("/", get(index))
        .route("/r/{room}", get(room_page))
        .fallback(asset)
        .with_state(client)
}

type Client = State<std::sync::Arc<WebClient>>;

async fn index(State(client): Client) -> Response {
    serve(&client, "index.html")
}

async fn room_page(State(client): Client, UrlPath(room): UrlPath<String>) -> Response {
    // Validated before anything is rendered: the page never sees an id the
    // server would refuse.
    match ringlet_proto::RoomId::new(room) {
        Ok(_) => serve(&client, "index.html"),
        Err(_) => not_found("This room link is not valid. Room ids are 1-64 letters, digits, '-' or '_'."),
    }
}

async fn asset(State(client): Client, method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET, HEAD")]).into_response();
    }
    let path = uri.path().strip_prefix('/').unwrap_or(uri.path());
    serve(&client, path)
}

fn serve(client: &WebClient, path: &str) -> Response {
    let body = match client {
        WebClient::Embedded => embedded(path).map(|b| b.to_vec()),
        WebClient::Dir(root) => from_dir(root, path),
        WebClient::Off => None,
    };
    match body {
        Some(body) => with_headers((StatusCode::OK, [(header::CONTENT_TYPE, content_type(path))], body).into_response()),
        None => not_found("Not found."),
    }
}

/// The embedded file at exactly `path`.
pub fn embedded(path: &str) -> Option<&'static [u8]> {
    assets::FILES.iter().find(|(p, _)| *p == path).map(|(_, b)| *b)
}

/// Every embedded path, for tests and diagnostics.
pub fn embedded_paths() -> impl Iterator<Item = &'static str> {
    assets::FILES.iter().map(|(p, _)| *p)
}

/// A file under `root`, if `path` is a plain relative path of ordinary
/// names that resolves inside it.
fn from_dir(root: &Path, path: &str) -> Option<Vec<u8>> {
    let safe_segment = |s: &str| {
        !s.is_empty() && !s.starts_with('.') && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    if !path.split('/').all(safe_segment) {
        return None;
    }
    let root = root.canonicalize().ok()?;
    let file = root.join(path).canonicalize().ok()?;
    if !file.starts_with(&root) || !file.is_file() {
        return None;
    }
    std::fs::read(file).ok()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn not_found(message: &str) -> Response {
    let page = format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Ringlet: not found</title>\
         <h1>Not found</h1><p>{}</p><p><a href=\"/\">Start a new call</a></p></html>",
        message.replace('&', "&amp;").replace('<', "&lt;")
    );
    with_headers((StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response())
}

fn with_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Small files, and a stale client after an upgrade would speak an old
    // protocol: revalidate every time.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(self), microphone=(self), display-capture=(self)"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_embedded() {
        assert!(embedded("index.html").is_some());
        assert!(embedded_paths().all(|p| !p.starts_with('/') && !p.contains("..")));
        assert!(embedded("../Cargo.toml").is_none());
        assert!(embedded("/etc/passwd").is_none());
    }

    #[test]
    fn a_directory_root_refuses_escapes() {
        let dir = std::env::temp_dir().join(format!("ringlet-web-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/a.js"), "ok").unwrap();
        std::fs::write(dir.join("../ringlet-secret.txt"), "secret").ok();
        assert_eq!(from_dir(&dir, "sub/a.js").as_deref(), Some(&b"ok"[..]));
        for bad in ["../ringlet-secret.txt", "sub/../../ringlet-secret.txt", "/etc/passwd", "sub//a.js", ".hidden", "sub\\a.js", "", "sub"] {
            assert_eq!(from_dir(&dir, bad), None, "{bad}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
