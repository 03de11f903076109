//! The web client as served: room pages, assets, headers, and requests that
//! try to reach files outside the client, spelled every way we know.

mod support;

use ringlet_signal::{web, Config, WebClient};
use support::*;

const INDEX: &str = include_str!("../../../ui/index.html");

/// Request targets that name something outside the client. Each must be
/// refused without a byte of the file it aims at.
const ESCAPES: &[&str] = &[
    "/../Cargo.toml",
    "/../../Cargo.toml",
    "/%2e%2e/Cargo.toml",
    "/%2E%2E/%2E%2E/Cargo.toml",
    "/..%2fCargo.toml",
    "/%2e%2e%2fCargo.toml",
    "/%2e%2e%2f%2e%2e%2fCargo.toml",
    "/vendor/../../Cargo.toml",
    "/vendor/%2e%2e/%2e%2e/Cargo.toml",
    "/r/../../Cargo.toml",
    "/r/%2e%2e%2f%2e%2e%2fCargo.toml",
    "/..\\..\\Cargo.toml",
    "/%5c..%5cCargo.toml",
    "//etc/passwd",
    "/etc/passwd",
    "/%2fetc%2fpasswd",
    "/file:///etc/passwd",
    "/....//Cargo.toml",
    "/.git/config",
    "/ui/index.html/../../Cargo.toml",
];

fn refused(r: &HttpResponse) -> bool {
    (r.status == 404 || r.status == 400) && !r.body.contains("[package]") && !r.body.contains("root:") && !r.body.contains("[core]")
}

async fn server(web: WebClient) -> TestServer {
    TestServer::start_with(Config { web, ..test_config() }).await
}

#[tokio::test]
async fn room_pages_serve_the_client_with_its_policy() {
    let s = server(WebClient::Embedded).await;
    for path in ["/", "/r/room-1", "/r/A_b-9", &format!("/r/{}", "x".repeat(64))] {
        let r = http(s.addr, "GET", path, &[]).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body, INDEX, "{path}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.header("content-security-policy"), Some(web::CSP));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    }
    // The policy keeps the page to its own origin.
    assert!(web::CSP.contains("script-src 'self'") && web::CSP.contains("connect-src 'self'"));
    assert!(!web::CSP.contains("unsafe-inline") && !web::CSP.contains('*'));
    s.stop().await;
}

#[tokio::test]
async fn invalid_room_ids_never_render_the_client() {
    let s = server(WebClient::Embedded).await;
    let long = format!("/r/{}", "x".repeat(65));
    for path in ["/r/bad%20room", "/r/a.b", "/r/..", "/r/%2e%2e", "/r/%00", "/r/caf%C3%A9", long.as_str(), "/r/a/b"] {
        let r = http(s.addr, "GET", path, &[]).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(!r.body.contains("<script"), "{path}: {}", r.body);
        assert_eq!(r.header("content-security-policy"), Some(web::CSP), "{path}");
    }
    let r = http(s.addr, "GET", "/r/bad%20room", &[]).await;
    assert!(r.body.contains("room link is not valid"), "{}", r.body);
    s.stop().await;
}

#[tokio::test]
async fn every_asset_is_served_with_its_type() {
    let s = server(WebClient::Embedded).await;
    let mut count = 0;
    for path in web::embedded_paths() {
        let r = http(s.addr, "GET", &format!("/{path}"), &[]).await;
        assert_eq!(r.status, 200, "{path}");
        let len: usize = r.header("content-length").expect("length").parse().unwrap();
        assert_eq!(len, web::embedded(path).unwrap().len(), "{path}");
        let ct = r.header("content-type").unwrap();
        if path.ends_with(".js") {
            assert_eq!(ct, "text/javascript; charset=utf-8");
        } else if path.ends_with(".css") {
            assert_eq!(ct, "text/css; charset=utf-8");
        }
        count += 1;
    }
    assert!(count >= 3, "index, script and style at least");
    assert!(web::embedded("vendor/socket.io.min.js").is_some(), "socket.io-client is bundled, not fetched from a CDN");
    let r = http(s.addr, "POST", "/app.js", &[("Content-Length", "0")]).await;
    assert_eq!(r.status, 405);
    assert_eq!(http(s.addr, "GET", "/no-such-file.js", &[]).await.status, 404);
    s.stop().await;
}

#[tokio::test]
async fn embedded_files_cannot_be_escaped() {
    let s = server(WebClient::Embedded).await;
    for target in ESCAPES {
        let r = http(s.addr, "GET", target, &[]).await;
        assert!(refused(&r), "{target}: {} {}", r.status, r.body);
    }
    // Absolute-form request targets are legal HTTP/1.1; the path part rules.
    let r = http(s.addr, "GET", &format!("http://{}/../../Cargo.toml", s.addr), &[]).await;
    assert!(refused(&r), "absolute form: {} {}", r.status, r.body);
    s.stop().await;
}

#[tokio::test]
async fn a_web_root_directory_cannot_be_escaped() {
    // root/ holds the client; a secret sits beside it, and one inside a
    // dot-directory of the root.
    let base = std::env::temp_dir().join(format!("ringlet-webroot-{}", std::process::id()));
    let root = base.join("root");
    std::fs::create_dir_all(root.join("vendor")).unwrap();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(root.join("index.html"), "<!doctype html>client").unwrap();
    std::fs::write(root.join("vendor/x.js"), "x()").unwrap();
    std::fs::write(root.join(".git/config"), "[core]").unwrap();
    std::fs::write(base.join("Cargo.toml"), "[package]").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(base.join("Cargo.toml"), root.join("link.toml")).unwrap();

    let s = server(WebClient::Dir(root.clone())).await;
    assert_eq!(http(s.addr, "GET", "/r/room-1", &[]).await.body, "<!doctype html>client");
    assert_eq!(http(s.addr, "GET", "/vendor/x.js", &[]).await.body, "x()");
    for target in ESCAPES.iter().copied().chain(["/link.toml", "/vendor", "/vendor/"]) {
        let r = http(s.addr, "GET", target, &[]).await;
        assert!(refused(&r), "{target}: {} {}", r.status, r.body);
    }
    s.stop().await;
    std::fs::remove_dir_all(&base).ok();
}

#[tokio::test]
async fn foreign_pages_cannot_load_the_client_scripts_and_no_web_means_none() {
    let s = server(WebClient::Embedded).await;
    let r = http(s.addr, "GET", "/app.js", &[("Origin", "http://evil.example")]).await;
    assert_eq!(r.status, 403);
    s.stop().await;

    let s = server(WebClient::Off).await;
    assert_eq!(http(s.addr, "GET", "/", &[]).await.status, 404);
    assert_eq!(http(s.addr, "GET", "/r/room-1", &[]).await.status, 404);
    assert_eq!(http(s.addr, "GET", "/healthz", &[]).await.status, 200);
    s.stop().await;
}
