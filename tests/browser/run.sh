#!/bin/sh
# Browser interop tests: the seed's client in Debian Chromium (playwright-core) calling ringlet-peer through ringlet-signal.
#   RINGLET_SIGNAL_BIN=/path/to/ringlet-signal RINGLET_PEER_BIN=/path/to/ringlet-peer tests/browser/run.sh [node --test args]
# Needs /usr/bin/chromium (apt-get install chromium) or CHROMIUM_BIN.
: "${RINGLET_SIGNAL_BIN:?set RINGLET_SIGNAL_BIN to the ringlet-signal binary}" && : "${RINGLET_PEER_BIN:?set RINGLET_PEER_BIN to the ringlet-peer binary}" && cd "$(dirname "$0")" && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && exec node --test --test-reporter=spec browser.test.mjs "$@"
