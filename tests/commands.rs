//! The shell's commands through Tauri's IPC on the mock runtime: what the
//! page sends, what it gets back, and the events of a real call (the peer
//! is a second session through a real `ringlet-signal`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringlet_app::commands::CALL_EVENT;
use ringlet_app::Shell;
use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, mock_builder, mock_context, noop_assets, MockRuntime, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::{Listener, Manager, WebviewWindow};

fn app() -> (tauri::App<MockRuntime>, WebviewWindow<MockRuntime>) {
    // Settings go to a private data directory, not the real one.
    let data = std::env::temp_dir().join(format!("ringlet-commands-{}", std::process::id()));
    std::env::set_var("XDG_DATA_HOME", &data);
    std::env::set_var("HOME", &data);
    let app = ringlet_app::with_commands(mock_builder().plugin(tauri_plugin_store::Builder::new().build()))
        .build(mock_context(noop_assets()))
        .expect("mock app");
    let webview = tauri::WebviewWindowBuilder::new(&app, "main", Default::default()).build().expect("mock window");
    (app, webview)
}

fn invoke(w: &WebviewWindow<MockRuntime>, cmd: &str, args: Value) -> Result<Value, Value> {
    let req = InvokeRequest {
        cmd: cmd.into(),
        callback: CallbackFn(0),
        error: CallbackFn(1),
        url: "tauri://localhost".parse().unwrap(),
        body: InvokeBody::Json(args),
        headers: Default::default(),
        invoke_key: INVOKE_KEY.to_string(),
    };
    get_ipc_response(w, req).map(|b| b.deserialize::<Value>().expect("json"))
}

fn err_text(r: Result<Value, Value>) -> String {
    match r {
        Err(Value::String(s)) => s,
        other => panic!("expected an error sentence, got {other:?}"),
    }
}

#[test]
fn commands_answer_and_refuse_readably() {
    let (_app, w) = app();
    let devices = invoke(&w, "devices", json!({})).unwrap();
    assert!(devices["cameras"].as_array().unwrap().iter().any(|c| c["id"] == "test-pattern"), "{devices}");
    assert!(devices["microphones"].as_array().unwrap().iter().any(|c| c["id"] == "test-tone"), "{devices}");

    assert!(err_text(invoke(&w, "media_set", json!({"change": {"micOn": false}}))).contains("not started"));
    let e = err_text(invoke(&w, "media_start", json!({"camera": "camera:1000", "microphone": "test-tone"})));
    assert!(e.contains("camera 1000"), "{e}");
    let e = err_text(invoke(&w, "media_start", json!({"camera": "/dev/video0", "microphone": "test-tone"})));
    assert!(e.contains("not a camera"), "{e}");

    let st = invoke(&w, "media_start", json!({"camera": "test-pattern", "microphone": "test-tone"})).unwrap();
    assert_eq!((st["micOn"].as_bool(), st["cameraOn"].as_bool()), (Some(true), Some(true)));
    let st = invoke(&w, "media_set", json!({"change": {"micOn": false, "cameraOn": false}})).unwrap();
    assert_eq!((st["micOn"].as_bool(), st["cameraOn"].as_bool()), (Some(false), Some(false)));
    let e = err_text(invoke(&w, "media_use", json!({"kind": "video", "id": "camera:1000"})));
    assert!(e.starts_with("Camera:"), "{e}");
    assert!(err_text(invoke(&w, "media_use", json!({"kind": "screen", "id": "x"}))).contains("Unknown device kind"));

    let e = err_text(invoke(&w, "call_join", json!({"request": {"room": "bad room", "peerId": "p1"}})));
    assert!(e.contains("room code is not valid"), "{e}");
    let e = err_text(invoke(&w, "call_join", json!({"request": {"room": "ok-room", "peerId": "p1"}})));
    assert!(e.contains("still starting"), "no embedded server yet: {e}");
    let e = err_text(invoke(&w, "call_new_room", json!({})));
    assert!(e.contains("still starting"), "no embedded server yet: {e}");
    assert!(err_text(invoke(&w, "call_chat", json!({"text": "hi"}))).contains("Not in a call"));
    assert!(invoke(&w, "call_hangup", json!({})).is_ok(), "hanging up outside a call is harmless");

    let e = err_text(invoke(&w, "settings_set", json!({"settings": {"serverUrl": "example.com"}})));
    assert!(e.contains("http://"), "{e}");
    let saved = json!({"serverUrl": "https://signal.example", "iceServers": [{"urls": ["stun:stun.example:3478"]}], "name": "Ada", "camera": "test-pattern", "microphone": "", "speaker": ""});
    invoke(&w, "settings_set", json!({"settings": saved})).unwrap();
    assert_eq!(invoke(&w, "settings_get", json!({})).unwrap(), saved);
    invoke(&w, "settings_set", json!({"settings": {}})).unwrap();
    invoke(&w, "media_stop", json!({})).unwrap();
}

#[test]
fn a_call_through_the_commands_reports_its_events() {
    let (app, w) = app();
    let rt = tauri::async_runtime::handle();
    // The embedded server, as the app starts it.
    let info = tauri::async_runtime::block_on(ringlet_app::start_signal("127.0.0.1:0".parse().unwrap())).unwrap();
    *app.state::<Shell>().signal.lock().unwrap() = Some(Ok(info.clone()));
    let app_info = invoke(&w, "app_info", json!({})).unwrap();
    assert!(app_info["framesUrl"].as_str().unwrap().starts_with("ws://127.0.0.1:"), "{app_info}");
    assert_eq!(app_info["signal"]["Ok"]["url"], info.url);
    // "New call" asks the embedded server for a room (it signs no invites).
    let created = invoke(&w, "call_new_room", json!({})).unwrap();
    assert_eq!(created["room"].as_str().map(str::len), Some(22), "{created}");
    assert!(created["token"].is_null(), "{created}");

    let events: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = Arc::clone(&events);
    app.listen(CALL_EVENT, move |e| sink.lock().unwrap().push(serde_json::from_str(e.payload()).unwrap()));

    invoke(&w, "media_start", json!({"camera": "test-pattern", "microphone": "test-tone"})).unwrap();
    invoke(&w, "call_join", json!({"request": {"room": "cmd-room", "peerId": "desk", "name": "Desk"}})).unwrap();
    let e = err_text(invoke(&w, "call_join", json!({"request": {"room": "cmd-room", "peerId": "desk"}})));
    assert!(e.contains("Already in a call"), "{e}");

    // The other person: a session of its own.
    let peer = rt.block_on(async {
        use ringlet_session::media::{AudioInput, VideoInput};
        let hub = ringlet_session::FrameHub::bind(&ringlet_session::APP_ORIGINS).await.unwrap();
        let local = Arc::new(ringlet_session::LocalMedia::start(VideoInput::TestPattern { width: 320, height: 240 }, AudioInput::Tone, hub.clone()).unwrap());
        let config = ringlet_session::SessionConfig {
            server: info.url.clone(),
            room: ringlet_proto::RoomId::new("cmd-room").unwrap(),
            peer_id: ringlet_proto::PeerId::new("other").unwrap(),
            name: Some("Other".into()),
            token: None,
            ice_servers: vec![],
            speaker: None,
        };
        ringlet_session::Session::start(config, local, hub).unwrap()
    });
    let (other, mut other_events) = peer;
    let wait_for = |pred: &dyn Fn(&Value) -> bool, what: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if events.lock().unwrap().iter().any(pred) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no {what} in {:?}", events.lock().unwrap());
    };
    wait_for(&|e| e["type"] == "joined", "joined");
    wait_for(&|e| e["type"] == "connected", "connected");
    // Chat flows once each side's data channel is open.
    wait_for(&|e| e["type"] == "data-open", "data-open");
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(e) = other_events.recv().await {
                if e == ringlet_session::SessionEvent::DataOpen {
                    return;
                }
            }
        })
        .await
        .expect("the other side's data channel opens");
        other.chat("hi desk")
    });
    wait_for(&|e| e["type"] == "chat" && e["text"] == "hi desk", "chat");
    invoke(&w, "call_chat", json!({"text": "hello other"})).unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(e) = other_events.recv().await {
                if e == (ringlet_session::SessionEvent::Chat { text: "hello other".into() }) {
                    return;
                }
            }
        })
        .await
        .expect("the other side got the chat")
    });
    invoke(&w, "media_set", json!({"change": {"micOn": false}})).unwrap();
    let q = invoke(&w, "call_quality", json!({})).unwrap();
    assert!(q["rttMs"].is_number(), "{q}");
    invoke(&w, "call_hangup", json!({})).unwrap();
    wait_for(&|e| e["type"] == "ended", "ended");
    rt.block_on(other.hangup());
}
