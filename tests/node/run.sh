#!/bin/sh
# Node interop tests for ringlet-signal: RINGLET_SIGNAL_BIN=/path/to/ringlet-signal tests/node/run.sh [node --test args]
: "${RINGLET_SIGNAL_BIN:?set RINGLET_SIGNAL_BIN to the ringlet-signal binary}" && cd "$(dirname "$0")" && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && exec node --test --test-reporter=spec signal.test.mjs stress.test.mjs "$@"
