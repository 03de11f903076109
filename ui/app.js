// The UI controller: screens, controls and what they show. It knows nothing
// about WebRTC or Socket.IO: it drives a backend (the browser's, web-call.js
// with media.js; the desktop app's, over Tauri commands, later) through
// its methods and renders its state and events.
//
// Screens: lobby (/), pre-join (/r/<room>), the call, "you left", and a
// problem screen (room full, invalid room, server refusals).

import { LocalMedia, playTestSound } from './media.js';
import { WebCall } from './web-call.js';
import { DesktopCall, DesktopMedia, LINK_EVENT, invoke, listen } from './desktop.js';
import { FrameView } from './frame-view.js';
import { appLink, isValidId, joinTarget, newRoomId, parseJoinInput, roomFromPath, TOKEN_RE, tokenFromSearch, webLink } from './links.js';

const $ = (id) => document.getElementById(id);
const desktop = !!window.__TAURI__;
const NAME_KEY = 'ringlet.name';

const ui = {
  screen: null,
  room: null,
  /** The invite token this room's links carry (servers that require one). */
  token: null,
  media: null,
  call: null,
  remoteVideoTrack: null,
  firstRemoteFrameAt: null,
  remoteFramesPresented: 0,
  chatOpen: false,
  unread: 0,
  /** Desktop only: the signaling server this call uses ('' = built in), and the frame view. */
  server: '',
  frames: null,
};

// ------------------------------------------------------------ test hook
// Read-only: a JSON copy of what the page knows. Tests drive the page by
// clicking and typing; they read results here.
Object.defineProperty(window, 'ringlet', {
  value: Object.freeze({
    get state() {
      return JSON.parse(JSON.stringify(snapshot()));
    },
  }),
  writable: false,
  configurable: false,
});

function snapshot() {
  const m = ui.media;
  const remote = $('remote-video');
  return {
    mode: desktop ? 'desktop' : 'web',
    screen: ui.screen,
    room: ui.room,
    statusText: $('call-status').textContent,
    media: m && {
      muted: m.muted,
      cameraOff: m.cameraOff,
      hasAudio: !!m.tracks.audio,
      hasVideo: !!m.tracks.video,
      errors: { ...m.errors },
      started: m.started,
      micPeak: m.meter.peak,
      previewWidth: $('preview').videoWidth,
    },
    call: ui.call ? ui.call.snapshot() : null,
    remoteVideo: { width: remote.videoWidth, height: remote.videoHeight, firstFrameAt: ui.firstRemoteFrameAt, framesPresented: ui.remoteFramesPresented },
    speaker: $('remote-audio').sinkId ?? null,
    chatOpen: ui.chatOpen,
    unread: ui.unread,
    frames: ui.frames ? ui.frames.summary() : null,
    signal: signalInfo,
  };
}

// ------------------------------------------------------------ helpers

function show(id) {
  for (const s of document.querySelectorAll('.screen')) s.hidden = s.id !== id;
  ui.screen = id;
}

let toastTimer = null;
function toast(text) {
  const t = $('toast');
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
}

/** Sets text only when it changes (live regions announce every write in some readers). */
function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** "Ada’s", or "Their" for someone without a name. */
const possessive = (name) => (name ? `${name}’s` : 'Their');

const initial = (name) => (name || '?').trim().charAt(0).toUpperCase() || '?';

async function copyText(text, input, status) {
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch {
    // No clipboard API (plain http) or no permission: copy the selection.
    input.focus();
    input.select();
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
  }
  status.textContent = ok ? 'Link copied.' : 'Select the link and press Ctrl+C to copy it.';
}

// ------------------------------------------------------------ lobby

function lobby() {
  show('lobby');
  $('new-call').addEventListener('click', async () => {
    if (desktop) {
      desktopNewCall();
      return;
    }
    const target = await webNewRoom();
    if (target) location.assign(target);
  });
  $('join-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const parsed = parseJoinInput($('join-input').value);
    const err = $('join-error');
    if (!parsed.ok) {
      err.textContent = parsed.message;
      err.hidden = false;
      $('join-input').setAttribute('aria-invalid', 'true');
      return;
    }
    err.hidden = true;
    $('join-input').removeAttribute('aria-invalid');
    if (desktop) desktopJoin(parsed);
    else location.assign(joinTarget(parsed, location));
  });
  $('join-input').addEventListener('input', () => {
    $('join-error').hidden = true;
    $('join-input').removeAttribute('aria-invalid');
  });
  if (desktop) {
    desktopSignalStatus();
    wireAppSettings();
  } else $('signal-status').textContent = `Calls on ${location.host} go peer to peer; this server only introduces you.`;
}

/**
 * A new room from this server (it names the room, and signs its first
 * invite when it requires them), as the path to go to; a room named here
 * when the server has no such endpoint; null, with a message, when it
 * refuses.
 */
async function webNewRoom() {
  try {
    const r = await fetch('/api/rooms', { method: 'POST' });
    if (r.status === 201) {
      const body = await r.json();
      if (isValidId(body.roomId)) {
        const token = typeof body.token === 'string' && TOKEN_RE.test(body.token) ? body.token : null;
        return webLink('', body.roomId, token);
      }
    } else if (r.status === 429) {
      $('signal-status').textContent = 'Too many new calls from your network just now; wait a minute and try again.';
      return null;
    }
  } catch {
    /* no endpoint (an older or the seed's server): name the room here */
  }
  return `/r/${newRoomId()}`;
}

// The desktop window: with no server set in Settings, calls meet on the
// server built into the app; links carry its LAN address so another
// machine on the network (app or browser) can join.
let signalInfo = null;
async function desktopSignalStatus() {
  const status = $('signal-status');
  for (let attempt = 0; attempt < 50 && !signalInfo; attempt++) {
    try {
      signalInfo = await invoke('signal_info');
    } catch (e) {
      // Still starting: ask again shortly; a real failure says so.
      if (!/starting/i.test(String(e))) {
        status.textContent = `The built-in server is not running: ${e}`;
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  if (signalInfo) status.textContent = `Calls meet on this computer's server, ${signalInfo.share_url.replace(/^https?:\/\//, '')}.`;
}

async function desktopNewCall() {
  if (!signalInfo && !appSettings?.serverUrl) {
    $('signal-status').textContent = 'The built-in server is not running yet; try again in a moment.';
    return;
  }
  let created;
  try {
    created = await invoke('call_new_room');
  } catch (e) {
    $('signal-status').textContent = `Could not start a call: ${e}`;
    return;
  }
  startPrejoin(created.room, '', created.token);
}

/** The server a parsed link names, as a base URL ('' when it is our own). */
function desktopServer(parsed) {
  if (!parsed.host) return '';
  const own = signalInfo && [signalInfo.url, signalInfo.share_url].some((u) => u.replace(/^https?:\/\//, '') === parsed.host);
  return own ? '' : `${parsed.protocol || 'http:'}//${parsed.host}`;
}

function desktopJoin(parsed) {
  startPrejoin(parsed.room, desktopServer(parsed), parsed.token);
}

function startPrejoin(room, server, token = null) {
  ui.server = server;
  ui.token = token || null;
  prejoin(room).catch((e) => {
    console.error(e);
    problem('internal', `Could not start: ${e.message ?? e}`);
  });
}

/** A ringlet:// (or http) link opened from outside: join it here. */
function openLink(url) {
  const parsed = parseJoinInput(url);
  if (!parsed.ok) {
    toast(parsed.message);
    return;
  }
  if (ui.screen === 'lobby') {
    desktopJoin(parsed);
    return;
  }
  if (parsed.room === ui.room && (ui.screen === 'prejoin' || ui.screen === 'call')) return; // already there
  if (ui.screen === 'call' && ui.call && !ui.call.ended) {
    toast('You are in a call: hang up first, then open the link again.');
    return;
  }
  // Another screen: start afresh with the link.
  try {
    sessionStorage.setItem('ringlet.open', url);
  } catch {
    /* lost: the person can paste it */
  }
  location.reload();
}

// ------------------------------------------------------------ desktop settings

/** "stun:h:p" / "turn:h:p user pass" lines ⇄ ICE server objects. */
function parseIceLines(text) {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
    const [url, username, credential] = l.split(/\s+/);
    return username ? { urls: [url], username, credential: credential ?? '' } : { urls: [url] };
  });
}
const iceLines = (list) => (list ?? []).map((s) => [s.urls[0], s.username, s.credential].filter(Boolean).join(' ')).join('\n');

function wireAppSettings() {
  const dialog = $('app-settings');
  $('app-settings-open').hidden = false;
  const fill = (select, list, current, none) => {
    select.replaceChildren(Object.assign(document.createElement('option'), { value: '', textContent: none }));
    for (const d of list) if (d.id) select.append(Object.assign(document.createElement('option'), { value: d.id, textContent: d.label }));
    select.value = list.some((d) => d.id === current) ? current : '';
  };
  $('app-settings-open').addEventListener('click', async () => {
    $('app-settings-error').hidden = true;
    try {
      const [st, dev] = await Promise.all([invoke('settings_get'), invoke('devices')]);
      $('set-server').value = st.serverUrl;
      $('set-ice').value = iceLines(st.iceServers);
      $('set-name').value = st.name;
      fill($('set-camera'), dev.cameras, st.camera, 'Choose when joining');
      fill($('set-mic'), dev.microphones, st.microphone, 'Choose when joining');
      fill($('set-speaker'), dev.speakers, st.speaker, 'System default');
      dialog.showModal();
    } catch (e) {
      toast(`Could not open the settings: ${e}`);
    }
  });
  $('app-settings-close').addEventListener('click', () => dialog.close());
  $('app-settings-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const settings = {
      serverUrl: $('set-server').value.trim(),
      iceServers: parseIceLines($('set-ice').value),
      camera: $('set-camera').value,
      microphone: $('set-mic').value,
      speaker: $('set-speaker').value,
      name: $('set-name').value.trim(),
    };
    try {
      await invoke('settings_set', { settings });
      appSettings = settings;
      dialog.close();
      toast('Settings saved.');
    } catch (err) {
      $('app-settings-error').textContent = String(err);
      $('app-settings-error').hidden = false;
    }
  });
}

/** The saved settings (desktop), read once at start and after each save. */
let appSettings = null;
async function loadAppSettings() {
  try {
    appSettings = await invoke('settings_get');
  } catch {
    appSettings = null;
  }
  return appSettings;
}

/** Where links to this room point: this server (web), or ours as others reach it (desktop). */
function roomLinkBase() {
  if (!desktop) return location.origin;
  return ui.server || appSettings?.serverUrl || signalInfo?.share_url || '';
}

// ------------------------------------------------------------ problem screens

const PROBLEMS = {
  'room-full': ['This call is full', 'Ringlet calls are for two people, and two are already in this one. Ask for a new link, or start your own call.'],
  'invalid-room': ['This room link is not valid', 'Room codes are 1 to 64 letters, digits, "-" or "_". Check the link you were sent.'],
  unauthorized: ['You are not allowed in this call', 'The link may have expired. Ask for a new one.'],
  'token-required': ['This call needs an invite', 'This server only lets in people with an invite link. Ask the person who started the call to send you the whole link.'],
  'token-invalid': ['This invite is not valid', 'The link may be incomplete or for another call. Copy the whole link again, or ask for a new one.'],
  'token-expired': ['This invite has expired', 'Ask the person who started the call for a new link.'],
  'limit-exceeded': ['The server is at its limit', 'Too many calls or connections right now. Try again in a little while.'],
  'rate-limited': ['Too much, too fast', 'The server asked this page to slow down. Reload to try again.'],
  'no-client': ['The page did not load completely', 'Reload the page.'],
};

function problem(code, message) {
  const [title, detail] = PROBLEMS[code] ?? ['Could not join the call', `${message || 'The server refused.'}${code ? ` (${code})` : ''}`];
  $('problem-title').textContent = title;
  $('problem-detail').textContent = detail;
  show('problem');
  document.title = `${title} · Ringlet`;
  ui.media?.stop();
}

// ------------------------------------------------------------ pre-join

async function prejoin(room) {
  ui.room = room;
  show('prejoin');
  document.title = 'Ready to join? · Ringlet';
  $('room-code').textContent = room;
  const base = roomLinkBase();
  const link = webLink(base, room, ui.token);
  $('share-link').value = link;
  $('open-app').href = appLink(desktop ? base.replace(/^https?:\/\//, '') : location.host, room, ui.token);
  if (desktop) $('open-app').hidden = true; // already in the app
  $('copy-link').addEventListener('click', () => copyText(link, $('share-link'), $('copy-status')));
  $('share-link').addEventListener('focus', (e) => e.target.select());
  try {
    $('display-name').value = localStorage.getItem(NAME_KEY) ?? '';
  } catch {
    /* not remembered */
  }
  $('display-name').addEventListener('change', saveName);
  $('display-name').addEventListener('keydown', (e) => {
    if (e.key === 'Enter') joinCall();
  });

  const media = desktop ? new DesktopMedia(appSettings ?? {}) : new LocalMedia();
  if (desktop && !$('display-name').value && appSettings?.name) $('display-name').value = appSettings.name;
  ui.media = media;
  if (desktop) await startFrames();
  media.on('change', renderMedia);
  media.on('track', renderLocalVideo);
  media.on('speaker', applySpeaker);
  $('pre-mic').addEventListener('click', toggleMic);
  $('pre-cam').addEventListener('click', toggleCamera);
  $('retry-devices').addEventListener('click', async () => {
    await media.retry();
    await fillPickers();
  });
  for (const [select, kind] of [[$('camera-select'), 'video'], [$('mic-select'), 'audio']]) {
    select.addEventListener('change', async () => {
      const label = select.selectedOptions[0]?.textContent ?? '';
      try {
        await media.useDevice(kind, select.value);
        deviceNote(`Now using ${label}.`);
      } catch (e) {
        deviceNote(e.message);
        await fillPickers();
      }
    });
  }
  $('speaker-select').addEventListener('change', () => media.setSpeaker($('speaker-select').value));
  $('test-speaker').addEventListener('click', () => playTestSound(media.prefs.speakerId).catch((e) => deviceNote(`Could not play the test sound: ${e.message}`)));
  if (!media.speakerSupported) {
    $('speaker-select').disabled = true;
    $('speaker-note').hidden = false;
  }
  $('join-button').addEventListener('click', joinCall);
  document.addEventListener('keydown', shortcuts);
  navigator.mediaDevices?.addEventListener?.('devicechange', fillPickers);
  renderMedia();
  meterLoop();
  // Join waits for the camera and microphone, but not for ever: someone
  // who leaves the permission prompt open can join, and whatever they
  // allow later joins the call (the senders take new tracks).
  $('join-button').disabled = true;
  $('prejoin-note').textContent = 'Starting your camera and microphone…';
  const started = media.start().then(fillPickers);
  await Promise.race([started, new Promise((r) => setTimeout(r, 4000))]);
  $('join-button').disabled = false;
  started.then(() => { $('prejoin-note').textContent = ''; });
  if (media.started) $('prejoin-note').textContent = '';
  else $('prejoin-note').textContent = 'Still waiting for your camera and microphone (is the browser asking for permission?). You can join now.';
  await started;
}

function saveName() {
  try {
    localStorage.setItem(NAME_KEY, $('display-name').value.trim().slice(0, 64));
  } catch {
    /* not remembered */
  }
}

function deviceNote(text) {
  const target = ui.screen === 'call' ? $('settings-note') : $('prejoin-note');
  target.textContent = text;
}

async function fillPickers() {
  const media = ui.media;
  if (!media) return;
  const d = await media.devices();
  const fill = (select, list, current, none) => {
    select.replaceChildren();
    for (const dev of list) {
      const o = document.createElement('option');
      o.value = dev.id;
      o.textContent = dev.label;
      select.append(o);
    }
    if (!list.length) {
      const o = document.createElement('option');
      o.value = '';
      o.textContent = none;
      select.append(o);
    }
    select.disabled = !list.length || (select.id === 'speaker-select' && !media.speakerSupported);
    if (current && list.some((x) => x.id === current)) select.value = current;
  };
  fill($('camera-select'), d.cameras, media.currentDevice('video'), 'No camera found');
  fill($('mic-select'), d.mics, media.currentDevice('audio'), 'No microphone found');
  fill($('speaker-select'), d.speakers, media.prefs.speakerId, 'Default speaker');
}

function toggleMic() {
  const m = ui.media;
  if (!m) return;
  if (!m.tracks.audio) {
    // Nothing to unmute: try to get the microphone again.
    m.setMuted(false);
    m.retry().then(fillPickers);
    return;
  }
  m.setMuted(!m.muted);
}

function toggleCamera() {
  const m = ui.media;
  if (!m) return;
  m.setCameraOff(!m.videoMuted).then(fillPickers);
}

function shortcuts(e) {
  if (!(e.ctrlKey || e.metaKey) || e.altKey || e.shiftKey) return;
  if (ui.screen !== 'prejoin' && ui.screen !== 'call') return;
  const k = e.key.toLowerCase();
  if (k === 'd') {
    e.preventDefault();
    toggleMic();
  } else if (k === 'e') {
    e.preventDefault();
    toggleCamera();
  }
}

function setToggle(button, off, onLabel, offLabel) {
  button.classList.toggle('off', off);
  const label = off ? offLabel : onLabel;
  button.setAttribute('aria-label', label);
  button.title = label;
}

function renderMedia() {
  const m = ui.media;
  if (!m) return;
  const micOff = m.audioMuted;
  const camOff = m.videoMuted;
  for (const id of ['pre-mic', 'mic-toggle']) setToggle($(id), micOff, 'Turn off microphone (Ctrl+D)', 'Turn on microphone (Ctrl+D)');
  for (const id of ['pre-cam', 'cam-toggle']) setToggle($(id), camOff, 'Turn off camera (Ctrl+E)', 'Turn on camera (Ctrl+E)');
  $('self-muted').hidden = !micOff;
  const errs = Object.values(m.errors).filter(Boolean);
  $('device-errors').replaceChildren(...errs.map((t) => Object.assign(document.createElement('li'), { textContent: t })));
  $('device-problems').hidden = !errs.length;
  const name = $('display-name').value;
  $('preview-avatar').textContent = initial(name);
  $('self-avatar').textContent = initial(name);
  $('preview-off-text').textContent = m.errors.video && !m.cameraOff ? 'No camera' : 'Camera is off';
  renderLocalVideo();
}

function renderLocalVideo() {
  const m = ui.media;
  if (desktop) {
    // The engine draws the preview on canvases (frame-view.js).
    const on = !!m && !m.videoMuted;
    for (const [canvas, vid, off] of [['preview-canvas', 'preview', 'preview-off'], ['self-canvas', 'self-video', 'self-off']]) {
      $(canvas).hidden = !on;
      $(vid).hidden = true;
      $(off).hidden = on;
    }
    ui.frames?.setPreview(on);
    return;
  }
  const track = m?.videoMuted ? null : m?.tracks.video;
  for (const [vid, off, screen] of [['preview', 'preview-off', 'prejoin'], ['self-video', 'self-off', 'call']]) {
    const v = $(vid);
    // Only the visible screen's element plays: a hidden one would still
    // render every frame.
    const want = ui.screen === screen ? track : null;
    const current = v.srcObject?.getVideoTracks?.()[0] ?? null;
    if (current !== want) v.srcObject = want ? new MediaStream([want]) : null;
    v.hidden = !track;
    $(off).hidden = !!track;
  }
}

function meterLoop() {
  // ~15 updates a second, and only on a visible change: the meter costs a
  // style recalculation and a repaint each time, on the thread that also
  // handles the call's signaling.
  let lastRead = 0;
  let lastAria = 0;
  let shown = -1;
  const tick = (t) => {
    const m = ui.media;
    if (!m || m.stopped) return;
    if (t - lastRead >= 66) {
      lastRead = t;
      const level = Math.round(m.meter.level() * 50) / 50;
      if (level !== shown) {
        shown = level;
        if (ui.screen === 'prejoin') $('mic-level').style.transform = `scaleX(${level})`;
        else $('mic-toggle').style.setProperty('--level', String(level));
      }
      if (t - lastAria > 500 && ui.screen === 'prejoin') {
        lastAria = t;
        $('mic-meter').setAttribute('aria-valuenow', String(Math.round(level * 100)));
      }
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}

function applySpeaker(id) {
  const audio = $('remote-audio');
  if (audio.setSinkId && id !== undefined) {
    audio.setSinkId(id).catch((e) => deviceNote(`Could not switch the speaker: ${e.message}`));
  }
}

// ------------------------------------------------------------ the call

function joinCall() {
  if (ui.call || !ui.media) return;
  saveName();
  const name = $('display-name').value.trim().slice(0, 64);
  const call = desktop
    ? new DesktopCall({ room: ui.room, name, media: ui.media, server: ui.server, token: ui.token, frames: () => ui.frames?.stats })
    : new WebCall({ room: ui.room, name, media: ui.media, token: ui.token });
  ui.call = call;
  show('call');
  $('settings-body').append($('device-pickers'));
  call.on('state', renderCall);
  call.on('chat', renderChat);
  call.on('remote-stream', attachRemote);
  call.on('stats', renderStats);
  call.on('notice', notice);
  wireCallControls();
  renderMedia();
  call.join();
  setInterval(renderTimer, 1000);
}

let controlsWired = false;
function wireCallControls() {
  if (controlsWired) return;
  controlsWired = true;
  $('mic-toggle').addEventListener('click', toggleMic);
  $('cam-toggle').addEventListener('click', toggleCamera);
  $('hangup').addEventListener('click', hangup);
  $('chat-toggle').addEventListener('click', () => setChat(!ui.chatOpen));
  $('chat-close').addEventListener('click', () => setChat(false));
  $('chat-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = $('chat-input');
    if (!input.value.trim()) return;
    if (ui.call?.sendChat(input.value)) input.value = '';
    else toast('Chat opens once you are connected to the other person.');
  });
  $('settings-open').addEventListener('click', async () => {
    await fillPickers();
    $('settings').showModal();
  });
  $('settings-close').addEventListener('click', () => $('settings').close());
  $('quality').addEventListener('click', () => {
    const panel = $('quality-panel');
    panel.hidden = !panel.hidden;
    $('quality').setAttribute('aria-expanded', String(!panel.hidden));
  });
  $('restart-ice').addEventListener('click', () => {
    if (ui.call?.restartIce('asked')) toast('Restarting the connection…');
    else toast('Nothing to restart: not connected to anyone yet.');
  });
  $('enable-sound').addEventListener('click', () => {
    $('remote-audio').play().then(() => { $('enable-sound').hidden = true; }).catch(() => {});
  });
  $('rejoin').addEventListener('click', () => location.reload());
  const link = webLink(roomLinkBase(), ui.room, ui.token);
  $('waiting-link').value = link;
  $('waiting-copy').addEventListener('click', () => copyText(link, $('waiting-link'), $('waiting-copy-status')));
  const remote = $('remote-video');
  remote.addEventListener('loadeddata', markFirstFrame);
  remote.addEventListener('resize', () => renderCall(ui.call?.snapshot()));
  if (remote.requestVideoFrameCallback) {
    const onFrame = () => {
      ui.remoteFramesPresented++;
      markFirstFrame();
      remote.requestVideoFrameCallback(onFrame);
    };
    remote.requestVideoFrameCallback(onFrame);
  }
}

function markFirstFrame() {
  if (ui.firstRemoteFrameAt === null && $('remote-video').videoWidth > 0) ui.firstRemoteFrameAt = performance.timeOrigin + performance.now();
}

function setChat(open) {
  ui.chatOpen = open;
  $('chat').hidden = !open;
  $('chat-toggle').setAttribute('aria-expanded', String(open));
  $('chat-toggle').setAttribute('aria-label', open ? 'Close chat' : 'Open chat');
  if (open) {
    ui.unread = 0;
    $('chat-unread').hidden = true;
    $('chat-input').focus();
  }
}

function renderChat(entry) {
  const li = document.createElement('li');
  li.className = entry.from === 'me' ? 'mine' : 'theirs';
  const meta = document.createElement('div');
  meta.className = 'meta';
  meta.textContent = `${entry.from === 'me' ? 'You' : entry.name} · ${new Date(entry.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}`;
  const text = document.createElement('div');
  text.className = 'text';
  text.textContent = entry.text;
  li.append(meta, text);
  $('chat-log').append(li);
  li.scrollIntoView({ block: 'end' });
  if (!ui.chatOpen && entry.from !== 'me') {
    ui.unread++;
    $('chat-unread').textContent = String(ui.unread);
    $('chat-unread').hidden = false;
    $('chat-toggle').setAttribute('aria-label', `Open chat (${ui.unread} unread)`);
  }
}

function attachRemote(stream) {
  const video = $('remote-video');
  const audio = $('remote-audio');
  if (!stream) {
    video.srcObject = null;
    audio.srcObject = null;
    ui.remoteVideoTrack = null;
    renderStats(null);
    renderCall(ui.call?.snapshot());
    return;
  }
  const vt = stream.getVideoTracks()[0] ?? null;
  const at = stream.getAudioTracks()[0] ?? null;
  if (vt && video.srcObject?.getVideoTracks()[0] !== vt) video.srcObject = new MediaStream([vt]);
  if (at && audio.srcObject?.getAudioTracks()[0] !== at) {
    audio.srcObject = new MediaStream([at]);
    applySpeaker(ui.media?.prefs.speakerId);
    audio.play().catch(() => { $('enable-sound').hidden = false; });
  }
  ui.remoteVideoTrack = vt;
  renderCall(ui.call?.snapshot());
}

function statusText(s) {
  const who = s.remote?.name || 'the other person';
  const Who = who.charAt(0).toUpperCase() + who.slice(1);
  switch (s.status) {
    case 'connecting':
      return s.remote?.present ? `Connecting to ${who}…` : 'Joining…';
    case 'unreachable':
      return 'Cannot reach the Ringlet server. Still trying…';
    case 'waiting':
      return 'Waiting for the other person to join';
    case 'connected':
      return s.signaling === 'joined' ? 'Connected' : 'Connected · reconnecting to the server…';
    case 'reconnecting':
      return 'Reconnecting…';
    case 'peer-left':
      return s.peerGone === 'timeout' ? `${Who} lost the connection` : `${Who} left the call`;
    default:
      return '';
  }
}

function renderCall(s) {
  if (!s) return;
  if (s.status === 'error') {
    problem(s.error?.code, s.error?.message);
    return;
  }
  if (s.status === 'ended') return; // hangup() shows the screen
  const text = statusText(s);
  setText($('call-status'), text);
  $('call-status').dataset.status = s.status;
  document.title = `${text} · Ringlet`;
  // The remote tile: video when it flows, else a card saying why not.
  const track = ui.remoteVideoTrack;
  const flowing = s.status === 'connected' || s.status === 'reconnecting';
  const videoShown = desktop
    ? flowing && !s.remoteMedia.videoMuted && (ui.frames?.stats.remote ?? 0) > 0
    : flowing && !!track && !track.muted && !s.remoteMedia.videoMuted && $('remote-video').videoWidth > 0;
  $(desktop ? 'remote-canvas' : 'remote-video').hidden = !videoShown;
  if (desktop) $('remote-video').hidden = true; // the canvas shows the engine's frames
  $('remote-off').hidden = videoShown;
  const name = s.remote?.name || '';
  $('remote-avatar').textContent = initial(name || 'Guest');
  let message = '';
  const waiting = s.status === 'waiting';
  $('waiting-share').hidden = !waiting;
  $('remote-avatar').hidden = waiting;
  if (waiting) message = 'Nobody else is here yet.';
  else if (s.status === 'peer-left') message = `${text}. They can come back with the same link.`;
  else if (s.status === 'unreachable') message = text;
  else if (s.status === 'connecting') message = text;
  else if (s.remoteMedia.videoMuted) message = `${possessive(name)} camera is off`;
  else if (!videoShown) message = name ? `No video from ${name} yet` : 'No video yet';
  setText($('remote-message'), message);
  $('remote-tag').hidden = !s.remote?.present;
  $('remote-name').textContent = name || 'Guest';
  $('remote-muted').hidden = !(s.remoteMedia.known && s.remoteMedia.audioMuted);
  $('remote-muted').setAttribute('aria-label', `${possessive(name)} microphone is off`);
  // Chat opens with the data channel.
  const input = $('chat-input');
  input.disabled = !s.chatReady;
  $('chat-send').disabled = !s.chatReady;
  input.placeholder = s.chatReady ? 'Send a message' : 'Chat opens once you are connected';
  // The server link: the call goes on without it.
  const banner = $('banner');
  if (s.signaling === 'reconnecting' && s.status === 'connected') {
    banner.textContent = 'Lost the connection to the server. Your call continues; reconnecting…';
    banner.hidden = false;
  } else if (banner.dataset.kind !== 'rejoined') {
    banner.hidden = true;
  }
  renderTimer();
}

function renderTimer() {
  const at = ui.call?.connectedAt;
  const el = $('call-timer');
  if (!at) {
    el.textContent = '0:00';
    return;
  }
  const sec = Math.max(0, Math.floor((Date.now() - at) / 1000));
  const h = Math.floor(sec / 3600);
  const mm = String(Math.floor((sec % 3600) / 60)).padStart(h ? 2 : 1, '0');
  const ss = String(sec % 60).padStart(2, '0');
  el.textContent = h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
  el.setAttribute('aria-label', `Call duration ${el.textContent}`);
}

function renderStats(st) {
  const q = st?.quality ?? 'unknown';
  const btn = $('quality');
  btn.dataset.quality = q;
  const label = { good: 'Good', fair: 'Fair', poor: 'Poor', unknown: '—' }[q];
  $('quality-text').textContent = label;
  btn.setAttribute('aria-label', `Connection quality: ${q === 'unknown' ? 'not known yet' : q}. Show details`);
  const dash = (v, unit) => (v === null || v === undefined ? '—' : `${v} ${unit}`);
  $('q-rtt').textContent = dash(st?.rttMs, 'ms');
  $('q-loss').textContent = dash(st?.lossPct, '%');
  $('q-in').textContent = dash(st?.inKbps, 'kbit/s');
  $('q-out').textContent = dash(st?.outKbps, 'kbit/s');
  const v = st?.video;
  $('q-video').textContent = v?.width ? `${v.width}×${v.height}${v.fps ? ` at ${Math.round(v.fps)} fps` : ''}${v.codec ? `, ${v.codec.replace('video/', '')}` : ''}` : '—';
  $('q-route').textContent = st?.route ?? '—';
  // The remote video may have started or stopped flowing.
  if (ui.call) renderCall(ui.call.snapshot());
}

function notice(n) {
  const banner = $('banner');
  if (n.kind === 'rejoined') {
    banner.textContent = 'Reconnected to the server.';
    banner.dataset.kind = 'rejoined';
    banner.hidden = false;
    setTimeout(() => {
      if (banner.dataset.kind === 'rejoined') {
        banner.hidden = true;
        delete banner.dataset.kind;
      }
    }, 4000);
  } else if (n.kind === 'signaling-lost') {
    delete banner.dataset.kind;
  } else if (n.kind === 'peer-joined') {
    toast(`${n.name || 'Someone'} joined`);
  } else if (n.kind === 'warning') {
    toast(n.message);
  }
}

async function hangup() {
  const call = ui.call;
  if (!call) return;
  $('hangup').disabled = true;
  await call.hangup();
  ui.media?.stop();
  if ($('settings').open) $('settings').close();
  const s = call.snapshot();
  $('ended-title').textContent = 'You left the call';
  const secs = s.connectedAt ? Math.floor((Date.now() - s.connectedAt) / 1000) : 0;
  $('ended-detail').textContent = secs ? `You talked for ${Math.floor(secs / 60)} min ${secs % 60} s.` : 'Nobody else joined.';
  show('ended');
  document.title = 'You left the call · Ringlet';
}

// ------------------------------------------------------------ start

/** Desktop: the frame socket, drawing on the preview and remote canvases. */
async function startFrames() {
  if (ui.frames) return;
  const info = await invoke('app_info');
  ui.frames = new FrameView(info.framesUrl, {
    remote: [$('remote-canvas')],
    preview: [$('preview-canvas'), $('self-canvas')],
  });
  let pending = false;
  ui.frames.onRemoteFrame = () => {
    // The first frame (and one after a pause) changes what the tile shows.
    if (!pending && ui.call && $('remote-canvas').hidden) {
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        renderCall(ui.call.snapshot());
      });
    }
  };
  await ui.frames.start(info.framePath);
}

async function startDesktop() {
  await loadAppSettings();
  lobby();
  await listen(LINK_EVENT, (e) => {
    // Handled live: not to be replayed from the pending list after a reload.
    invoke('take_pending_links').catch(() => {});
    openLink(e.payload);
  });
  let pending = [];
  try {
    pending = await invoke('take_pending_links');
  } catch {
    /* none */
  }
  try {
    const reopened = sessionStorage.getItem('ringlet.open');
    if (reopened) {
      sessionStorage.removeItem('ringlet.open');
      pending.push(reopened);
    }
  } catch {
    /* none */
  }
  if (pending.length) {
    // The server first: a link to our own server uses the loopback address.
    await desktopSignalStatus();
    openLink(pending[pending.length - 1]);
  }
}

function start() {
  if (desktop) {
    startDesktop().catch((e) => {
      console.error(e);
      toast(`Ringlet could not start properly: ${e?.message ?? e}`);
    });
    return;
  }
  const path = location.pathname;
  if (path === '/' || path === '/index.html' || path === '') {
    lobby();
    return;
  }
  const room = roomFromPath(path);
  if (!room) {
    problem('invalid-room');
    return;
  }
  ui.token = tokenFromSearch(location.search);
  prejoin(room).catch((e) => {
    console.error(e);
    problem('internal', `The page could not start: ${e.message}`);
  });
}

start();
