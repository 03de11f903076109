// The lobby asks the backend where its embedded signaling server listens.
const status = document.getElementById('signal-status');
async function showSignal() {
  const invoke = window.__TAURI__?.core?.invoke;
  if (!invoke) { status.textContent = 'Not running inside the Ringlet app.'; return; }
  try {
    const info = await invoke('signal_info');
    status.textContent = `Signaling server: ${info.url}`;
  } catch (e) {
    status.textContent = `Signaling server unavailable: ${e}`;
  }
}
showSignal();
