#!/usr/bin/env bash
# Builds the Debian package of octoflow into target/debian/.
#
#   pkg/deb/build.sh            the release build (`cargo build --release` first if needed)
#   pkg/deb/build.sh dev        from the dev build (CI's package test: no second build)
#
# The binary writes its own shell completions and manual pages (target/pkg/), then
# cargo-deb (`cargo install cargo-deb`) packs them with the unit, the config and the docs
# as crates/octoflow/Cargo.toml's [package.metadata.deb] lists.
set -euo pipefail

profile="${1:-release}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

case "$profile" in
    release) dir=release; cargo build --release --locked -p octoflow ;;
    dev) dir=debug; cargo build --locked -p octoflow ;;
    *) echo "usage: $0 [release|dev]" >&2; exit 2 ;;
esac
bin="target/$dir/octoflow"

rm -rf target/pkg
mkdir -p target/pkg/completions target/pkg/man
"$bin" completions bash >target/pkg/completions/octoflow.bash
"$bin" completions zsh >target/pkg/completions/_octoflow
"$bin" completions fish >target/pkg/completions/octoflow.fish
"$bin" man --dir target/pkg/man >/dev/null 2>&1

cargo deb -p octoflow --no-build --profile "$profile" --strip --no-dbgsym --quiet
ls target/debian/octoflow_*.deb
