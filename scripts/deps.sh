#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages a task needs, only if any is missing.
# Usage: scripts/deps.sh app|test
set -euo pipefail

app=(libwebkit2gtk-4.1-dev build-essential libxdo-dev libssl-dev
     libayatana-appindicator3-dev librsvg2-dev pkg-config curl
     libvpx-dev libopus-dev libasound2-dev libclang-dev)
# Browser interop tests drive Debian's Chromium (npm's browser downloads
# cannot work offline). The desktop end-to-end tests run the app on a
# virtual X display (xvfb) in a private D-Bus session (dbus: the
# single-instance plugin meets its second instance there), drive the window
# through WebKitWebDriver (webkit2gtk-driver, behind tauri-driver) and take
# screenshots from the X server (imagemagick's `import`). The multi-node
# and NAT-traversal tests start their own redis-server and coturn
# (turnserver) on loopback ports; neither runs as a service.
test=("${app[@]}" chromium xvfb webkit2gtk-driver dbus imagemagick redis-server coturn)

case "${1:-}" in
  app) want=("${app[@]}") ;;
  test) want=("${test[@]}") ;;
  *) echo "usage: $0 app|test" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
