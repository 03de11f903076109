#!/bin/sh
# Node interop tests for ringlet-signal. Needs RINGLET_SIGNAL_BIN=/path/to/ringlet-signal.
cd "$(dirname "$0")" && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && exec node --test --test-reporter=spec signal.test.mjs "$@"
