#!/usr/bin/env bash
# scripts/browser-deps.sh: what the console's browser tests need, installed
# if missing, and where it is on stdout:
#
#   export FALLBACK_TEST_CHROMIUM=/usr/bin/chromium
#   export FALLBACK_TEST_AXE_JS=<cache>/axe-core-4.14.1/axe.min.js
#
# - Chromium: Debian's `chromium` package (apt-get; about 20 s the first
#   time). The tests drive it headless with chromedp.
# - axe-core: the accessibility engine the tests run inside each page, from
#   the npm registry at a pinned version (MPL-2.0; test-only, never served
#   by the console). `npm pack` fetches the tarball; nothing is installed
#   globally. Cached under $FALLBACK_CACHE_DIR (default ~/.cache/fallback).
#
#   eval "$(scripts/browser-deps.sh)"
#   go test -count=1 -run Browser ./integration/
set -euo pipefail

AXE_VERSION=4.14.1
CACHE="${FALLBACK_CACHE_DIR:-$HOME/.cache/fallback}"

chromium_bin="$(command -v chromium || true)"
if [[ -z "$chromium_bin" ]]; then
  echo "browser-deps: installing chromium (apt-get)" >&2
  if ! apt-get install -y chromium >&2; then
    apt-get update >&2
    apt-get install -y chromium >&2
  fi
  chromium_bin="$(command -v chromium)"
fi

axe_dir="$CACHE/axe-core-$AXE_VERSION"
if [[ ! -s "$axe_dir/axe.min.js" ]]; then
  echo "browser-deps: fetching axe-core@$AXE_VERSION (npm pack)" >&2
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "axe-core@$AXE_VERSION" >/dev/null && tar xzf "axe-core-$AXE_VERSION.tgz")
  mkdir -p "$axe_dir"
  cp "$tmp/package/axe.min.js" "$tmp/package/LICENSE" "$axe_dir/"
  rm -rf "$tmp"
fi

echo "export FALLBACK_TEST_CHROMIUM=$chromium_bin"
echo "export FALLBACK_TEST_AXE_JS=$axe_dir/axe.min.js"
