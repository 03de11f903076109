#!/bin/sh
# Browser tests: every *.test.mjs here, one file at a time (Chromium is heavy on 2 cores):
# the seed's client and Ringlet's own web client (served by ringlet-signal) in Debian
# Chromium (playwright-core) calling ringlet-peer and each other, and the web client's
# pure modules under Node.
#   RINGLET_SIGNAL_BIN=/path/to/ringlet-signal RINGLET_PEER_BIN=/path/to/ringlet-peer tests/browser/run.sh [node --test args]
# Needs /usr/bin/chromium (apt-get install chromium) or CHROMIUM_BIN. With RINGLET_WEB_ROOT=ui
# ringlet-signal serves ui/ from disk instead of the copy built into it.
: "${RINGLET_SIGNAL_BIN:?set RINGLET_SIGNAL_BIN to the ringlet-signal binary}" && : "${RINGLET_PEER_BIN:?set RINGLET_PEER_BIN to the ringlet-peer binary}" && cd "$(dirname "$0")" && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && exec node --test --test-concurrency=1 --test-reporter=spec "$@" ./*.test.mjs
