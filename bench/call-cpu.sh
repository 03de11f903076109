#!/usr/bin/env bash
# CPU of a two-way 720p30 call per peer: two ringlet-peers through
# ringlet-signal against two headless Chromiums (fake 1280x720 camera) through
# the seed's Node server, one after the other in one run. Release builds.
# Figures: BENCHMARKS.md; method: bench/call-cpu.mjs.
#
#   bench/call-cpu.sh [--warmup S] [--measure S] [--rounds N] [--hd]
#     --warmup/--measure/--rounds: defaults 10, 30, 1 (or WARMUP=, MEASURE=,
#       ROUNDS= in the environment; with 2+ rounds the order alternates)
#     --hd (or HD=1): first wait until Chromium's bandwidth estimate has
#       ramped up to 1280x720 both ways (~25 s here), so both calls are
#       measured at the same resolution; without it Chromium is measured
#       while still sending 480x270-960x540
#     ONLY=peer|chromium runs one half; CHROMIUM_FAKE_FPS (default 30:
#     Chromium's fake camera otherwise runs at 20 fps whatever getUserMedia
#     asks); CHROMIUM_RENDER=1 also plays Chromium's remote video in a
#     <video> element (ringlet-peer decodes but does not display, so the
#     default is decode-only on both sides)
#
# Builds ringlet-peer and ringlet-signal in release mode first, unless
# RINGLET_PEER_BIN and RINGLET_SIGNAL_BIN are both set (then they are used as
# given) or NO_BUILD=1 (then the existing release binaries are used).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/release-bins.sh
exec node bench/call-cpu.mjs "$@"
