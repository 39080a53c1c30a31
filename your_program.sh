#!/bin/sh
# Builds sprat (a no-op when nothing changed) and runs it.
# Usage: ./your_program.sh [path/to/server.properties] [--override key=value ...]
set -e
dir=$(cd "$(dirname "$0")" && pwd)
cargo build --release --quiet --locked --manifest-path "$dir/Cargo.toml" --bin sprat
exec "$dir/target/release/sprat" "$@"
