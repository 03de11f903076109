//! The commands the page calls. Each is a thin step into `ringlet-session`;
//! every failure comes back as a sentence the page can show.

use std::sync::{Arc, Mutex};

use ringlet_proto::{PeerId, RoomId};
use ringlet_session::{audio_input, video_input, DeviceList, FrameHub, LocalMedia, Quality, Session, SessionConfig, APP_ORIGINS};
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Emitter, Manager, Runtime, State};

use crate::settings::Settings;
use crate::signal::SignalInfo;

/// The event the page listens to for everything the call reports.
pub const CALL_EVENT: &str = "ringlet://call";
/// A `ringlet://` link opened while the app runs (or started it).
pub const LINK_EVENT: &str = "ringlet://link";

/// Everything the shell holds.
#[derive(Default)]
pub struct Shell {
    pub signal: Mutex<Option<Result<SignalInfo, String>>>,
    hub: tokio::sync::OnceCell<FrameHub>,
    local: Mutex<Option<Arc<LocalMedia>>>,
    session: Mutex<Option<Arc<Session>>>,
    /// Links that arrived before the page listened.
    pub pending_links: Mutex<Vec<String>>,
    /// Links opened lately, to drop a second delivery of the same one.
    pub seen_links: Mutex<Vec<(String, std::time::Instant)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shell {
    async fn hub(&self) -> Result<FrameHub, String> {
        self.hub
            .get_or_try_init(|| FrameHub::bind(&APP_ORIGINS))
            .await
            .cloned()
            .map_err(|e| format!("Cannot open the video socket: {e}"))
    }

    fn local(&self) -> Result<Arc<LocalMedia>, String> {
        lock(&self.local).clone().ok_or_else(|| "The camera and microphone are not started.".to_string())
    }

    fn session(&self) -> Result<Arc<Session>, String> {
        lock(&self.session).clone().ok_or_else(|| "Not in a call.".to_string())
    }
}

/// What the page needs to know at start.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    pub version: &'static str,
    /// The embedded signaling server, or why it is not running.
    pub signal: Option<Result<SignalInfo, String>>,
    /// The frame socket's URL (with its secret).
    pub frames_url: String,
    /// `jpeg` forces the remote picture as JPEG (`RINGLET_FRAME_PATH`):
    /// for a webview whose WebCodecs misbehaves, and to compare the paths.
    pub frame_path: Option<String>,
}

#[tauri::command]
pub async fn app_info(shell: State<'_, Shell>) -> Result<AppInfo, String> {
    let hub = shell.hub().await?;
    let frame_path = std::env::var("RINGLET_FRAME_PATH").ok().filter(|p| p == "jpeg" || p == "vp8");
    Ok(AppInfo { version: env!("CARGO_PKG_VERSION"), signal: lock(&shell.signal).clone(), frames_url: hub.url(), frame_path })
}

/// The embedded server's address, or why it is not running.
#[tauri::command]
pub fn signal_info(shell: State<'_, Shell>) -> Result<SignalInfo, String> {
    lock(&shell.signal).clone().unwrap_or_else(|| Err("The signaling server is starting.".into()))
}

#[tauri::command]
pub async fn devices() -> Result<DeviceList, String> {
    // Device queries block (v4l2, ALSA): off the async threads.
    tauri::async_runtime::spawn_blocking(DeviceList::query).await.map_err(|e| e.to_string())
}

/// The state of the local media, as the pre-join screen shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MediaState {
    pub mic_on: bool,
    pub camera_on: bool,
    /// Microphone level, 0 to 1.
    pub level: f32,
}

fn media_state(local: &LocalMedia) -> MediaState {
    MediaState {
        mic_on: local.mic_on(),
        camera_on: local.camera_on(),
        // 8000 RMS is a loud voice close to the microphone.
        level: (local.stats().level as f32 / 8000.0).min(1.0),
    }
}

/// Starts the camera and microphone (picker ids), or switches them if
/// already running.
#[tauri::command]
pub async fn media_start(shell: State<'_, Shell>, camera: String, microphone: String) -> Result<MediaState, String> {
    let video = video_input(&camera)?;
    let audio = audio_input(&microphone)?;
    if let Ok(local) = shell.local() {
        local.switch_video(video).map_err(|e| format!("Camera: {e}"))?;
        local.switch_audio(audio).map_err(|e| format!("Microphone: {e}"))?;
        return Ok(media_state(&local));
    }
    let hub = shell.hub().await?;
    let local = tauri::async_runtime::spawn_blocking(move || LocalMedia::start(video, audio, hub))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("Could not start your camera or microphone: {e}"))?;
    let state = media_state(&local);
    *lock(&shell.local) = Some(Arc::new(local));
    Ok(state)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaChange {
    pub mic_on: Option<bool>,
    pub camera_on: Option<bool>,
}

/// Mute, unmute, camera on or off; in a call the peer is told.
#[tauri::command]
pub fn media_set(shell: State<'_, Shell>, change: MediaChange) -> Result<MediaState, String> {
    let local = shell.local()?;
    let session = shell.session().ok();
    if let Some(on) = change.mic_on {
        match &session {
            Some(s) => s.set_mic(on),
            None => local.set_mic(on),
        }
    }
    if let Some(on) = change.camera_on {
        match &session {
            Some(s) => s.set_camera(on),
            None => local.set_camera(on),
        }
        .map_err(|e| format!("Camera: {e}"))?;
    }
    Ok(media_state(&local))
}

/// Another device, mid-call or before: `kind` is video, audio or speaker.
#[tauri::command]
pub fn media_use(shell: State<'_, Shell>, kind: String, id: String) -> Result<MediaState, String> {
    let local = shell.local()?;
    match kind.as_str() {
        "video" => local.switch_video(video_input(&id)?).map_err(|e| format!("Camera: {e}"))?,
        "audio" => local.switch_audio(audio_input(&id)?).map_err(|e| format!("Microphone: {e}"))?,
        "speaker" => {
            if let Ok(s) = shell.session() {
                s.switch_speaker((!id.is_empty()).then_some(id.as_str()));
            }
        }
        other => return Err(format!("Unknown device kind {other:?}.")),
    }
    Ok(media_state(&local))
}

#[tauri::command]
pub fn media_state_now(shell: State<'_, Shell>) -> Result<MediaState, String> {
    Ok(media_state(&*shell.local()?))
}

/// Releases the camera and microphone.
#[tauri::command]
pub fn media_stop(shell: State<'_, Shell>) {
    let local = lock(&shell.local).take();
    // Joining capture threads blocks: not on the page's thread.
    std::thread::spawn(move || drop(local));
}

/// The server a call uses: the link's, else the one in Settings, else the
/// built-in one.
fn server_for(requested: &str, settings: &Settings, shell: &Shell) -> Result<String, String> {
    if !requested.trim().is_empty() {
        Ok(requested.trim().to_string())
    } else if !settings.server_url.trim().is_empty() {
        Ok(settings.server_url.trim().to_string())
    } else {
        match lock(&shell.signal).clone() {
            Some(Ok(info)) => Ok(info.url),
            Some(Err(e)) => Err(format!("The built-in server is not running ({e}); set a server in Settings.")),
            None => Err("The built-in server is still starting; try again in a moment.".into()),
        }
    }
}

/// A new room to share, from the server calls will meet on
/// (`{room, token?}`): a server that requires invites names the room and
/// signs its first token.
#[tauri::command]
pub async fn call_new_room<R: Runtime>(app: AppHandle<R>, shell: State<'_, Shell>) -> Result<serde_json::Value, String> {
    let settings = crate::load_settings(&app);
    let server = server_for("", &settings, &shell)?;
    let new = ringlet_session::call::rooms::create_room(&server).await.map_err(|e| e.to_string())?;
    Ok(serde_json::json!({ "room": new.room, "token": new.token }))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    /// Signaling server base URL; empty for the configured or embedded one.
    #[serde(default)]
    pub server: String,
    pub room: String,
    pub peer_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub speaker: String,
    /// The invite token the link carried, if any.
    #[serde(default)]
    pub token: String,
}

/// Joins a call with the running local media. Events arrive as
/// [`CALL_EVENT`].
#[tauri::command]
pub async fn call_join<R: Runtime>(app: AppHandle<R>, shell: State<'_, Shell>, request: JoinRequest) -> Result<(), String> {
    if lock(&shell.session).is_some() {
        return Err("Already in a call: hang up first.".into());
    }
    let room = RoomId::new(request.room.trim()).map_err(|_| "This room code is not valid: 1-64 letters, digits, '-' or '_'.".to_string())?;
    let peer_id = PeerId::new(request.peer_id).map_err(|e| format!("Peer id: {e}"))?;
    let settings = crate::load_settings(&app);
    let server = server_for(&request.server, &settings, &shell)?;
    let local = shell.local()?;
    let hub = shell.hub().await?;
    let name = request.name.trim();
    let config = SessionConfig {
        server,
        room,
        peer_id,
        name: (!name.is_empty()).then(|| name.chars().take(64).collect()),
        token: Some(request.token.trim().to_owned()).filter(|t| !t.is_empty()),
        ice_servers: settings.ice_servers.clone(),
        speaker: (!request.speaker.is_empty()).then_some(request.speaker),
    };
    let (session, mut events) = Session::start(config, local, hub).map_err(|e| e.to_string())?;
    *lock(&shell.session) = Some(Arc::new(session));
    tauri::async_runtime::spawn(async move {
        while let Some(e) = events.recv().await {
            let ended = e == ringlet_session::SessionEvent::Ended;
            if let Err(err) = app.emit(CALL_EVENT, &e) {
                tracing::warn!(error = %err, "cannot tell the page");
            }
            if ended {
                break;
            }
        }
    });
    Ok(())
}

#[tauri::command]
pub fn call_chat(shell: State<'_, Shell>, text: String) -> Result<(), String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(());
    }
    if text.len() > 4000 {
        return Err("A chat message is at most 4000 characters.".into());
    }
    shell.session()?.chat(text);
    Ok(())
}

#[tauri::command]
pub fn call_restart_ice(shell: State<'_, Shell>) -> Result<(), String> {
    shell.session()?.restart_ice();
    Ok(())
}

#[tauri::command]
pub async fn call_quality(shell: State<'_, Shell>) -> Result<Quality, String> {
    Ok(shell.session()?.quality().await)
}

/// Leaves the call (the camera and microphone stay on for the next one).
#[tauri::command]
pub async fn call_hangup(shell: State<'_, Shell>) -> Result<(), String> {
    let session = lock(&shell.session).take();
    if let Some(s) = session {
        s.hangup().await;
    }
    Ok(())
}

#[tauri::command]
pub fn settings_get<R: Runtime>(app: AppHandle<R>) -> Settings {
    crate::load_settings(&app)
}

#[tauri::command]
pub fn settings_set<R: Runtime>(app: AppHandle<R>, settings: Settings) -> Result<Settings, String> {
    settings.validate()?;
    crate::save_settings(&app, &settings)?;
    Ok(settings)
}

/// Links that opened the app before the page was listening.
#[tauri::command]
pub fn take_pending_links<R: Runtime>(app: AppHandle<R>) -> Vec<String> {
    std::mem::take(&mut *lock(&app.state::<Shell>().pending_links))
}
