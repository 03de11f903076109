# Sourced by the scripts: one cargo target directory outside the clone, so a
# fresh clone (CI's) reuses earlier builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ringlet-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
