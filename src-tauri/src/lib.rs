//! The Ringlet desktop shell: a Tauri window over `ui/`, the embedded
//! signaling server, deep links, settings, and commands that step into
//! `ringlet-session`, where the call lives. It stays thin.

use tauri::{Emitter, Manager, Runtime};
use tauri_plugin_deep_link::DeepLinkExt;
use tauri_plugin_store::StoreExt;

pub mod commands;
pub mod settings;
pub mod signal;

pub use commands::Shell;
pub use settings::Settings;
pub use signal::{start_signal, SignalInfo};

const SETTINGS_FILE: &str = "settings.json";
const SETTINGS_KEY: &str = "settings";

/// The stored settings, or the defaults (a damaged file is logged and
/// ignored rather than stopping the app).
pub fn load_settings<R: Runtime>(app: &tauri::AppHandle<R>) -> Settings {
    let Ok(store) = app.store(SETTINGS_FILE) else { return Settings::default() };
    store
        .get(SETTINGS_KEY)
        .and_then(|v| serde_json::from_value(v).map_err(|e| tracing::warn!(error = %e, "ignoring unreadable settings")).ok())
        .unwrap_or_default()
}

pub fn save_settings<R: Runtime>(app: &tauri::AppHandle<R>, settings: &Settings) -> Result<(), String> {
    let store = app.store(SETTINGS_FILE).map_err(|e| format!("Cannot open the settings file: {e}"))?;
    store.set(SETTINGS_KEY, serde_json::to_value(settings).map_err(|e| e.to_string())?);
    store.save().map_err(|e| format!("Cannot save the settings: {e}"))
}

/// Hands `ringlet://` links to the page (or keeps them until it asks).
fn open_links<R: Runtime>(app: &tauri::AppHandle<R>, urls: Vec<String>) {
    let shell = app.state::<Shell>();
    // The same link can arrive twice at start (the command line, and the
    // deep-link plugin's current URL): once is enough.
    let links: Vec<String> = {
        let mut seen = shell.seen_links.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        seen.retain(|(_, at)| now.duration_since(*at) < std::time::Duration::from_secs(2));
        let fresh: Vec<String> = urls
            .into_iter()
            .filter(|u| u.starts_with("ringlet://") && !seen.iter().any(|(s, _)| s == u))
            .collect();
        seen.extend(fresh.iter().map(|u| (u.clone(), now)));
        fresh
    };
    if links.is_empty() {
        return;
    }
    tracing::info!(?links, "opening links");
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
    if let Ok(mut pending) = app.state::<Shell>().pending_links.lock() {
        pending.extend(links.iter().cloned());
    }
    for l in links {
        let _ = app.emit(commands::LINK_EVENT, l);
    }
}

/// Software GL is the common case on Linux desktops without a driver for
/// the GPU, and there WebKit's compositing holds video at 14-20 fps and
/// eats both cores (measured); drawing without it shows 720p at 30.
fn webview_environment() {
    if std::env::var_os("WEBKIT_DISABLE_COMPOSITING_MODE").is_none() && std::env::var_os("RINGLET_WEBKIT_COMPOSITING").is_none() {
        // SAFETY: at start-up, before any thread that reads the environment.
        unsafe { std::env::set_var("WEBKIT_DISABLE_COMPOSITING_MODE", "1") };
    }
}

/// The shell's state and every command the page may call: the app and its
/// tests (on Tauri's mock runtime) share this one list.
pub fn with_commands<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder.manage(Shell::default()).invoke_handler(tauri::generate_handler![
        commands::app_info,
        commands::signal_info,
        commands::devices,
        commands::media_start,
        commands::media_set,
        commands::media_use,
        commands::media_state_now,
        commands::media_stop,
        commands::call_new_room,
        commands::call_join,
        commands::call_chat,
        commands::call_restart_ice,
        commands::call_quality,
        commands::call_hangup,
        commands::settings_get,
        commands::settings_set,
        commands::take_pending_links,
    ])
}

pub fn run() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RINGLET_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    webview_environment();
    with_commands(tauri::Builder::default())
        // First: a second instance hands its link to this one and exits.
        // With the deep-link feature the link arrives through on_open_url
        // below; here the window only comes forward.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            if let Some(w) = app.get_webview_window("main") {
                let _ = w.unminimize();
                let _ = w.set_focus();
            }
        }))
        .plugin(tauri_plugin_deep_link::init())
        .plugin(tauri_plugin_store::Builder::new().build())
        .setup(|app| {
            #[cfg(any(target_os = "linux", all(debug_assertions, windows)))]
            if let Err(e) = app.deep_link().register_all() {
                // Links still work when the .deb registered the scheme.
                tracing::warn!(error = %e, "could not register ringlet:// for this build");
            }
            let handle = app.handle().clone();
            app.deep_link().on_open_url(move |event| {
                open_links(&handle, event.urls().iter().map(|u| u.to_string()).collect());
            });
            if let Ok(Some(urls)) = app.deep_link().get_current() {
                open_links(app.handle(), urls.iter().map(|u| u.to_string()).collect());
            }
            // Started with a link on the command line (as the desktop
            // entry does: `ringlet %u`).
            open_links(app.handle(), std::env::args().skip(1).collect());

            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                let result = match std::env::var("RINGLET_SIGNAL_LISTEN").ok().as_deref().unwrap_or(signal::PREFERRED).parse() {
                    Ok(listen) => start_signal(listen).await,
                    Err(e) => Err(format!("RINGLET_SIGNAL_LISTEN: {e}")),
                };
                match &result {
                    Ok(info) => tracing::info!(url = %info.url, share = %info.share_url, "embedded signaling server listening"),
                    Err(e) => tracing::error!(error = %e, "embedded signaling server failed"),
                }
                if let Ok(mut s) = handle.state::<Shell>().signal.lock() {
                    *s = Some(result);
                }
            });
            Ok(())
        })
        .run(tauri::generate_context!())
        .unwrap_or_else(|e| {
            eprintln!("ringlet: cannot start the window: {e}");
            std::process::exit(1);
        });
}
