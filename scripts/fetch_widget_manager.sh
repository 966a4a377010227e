#!/usr/bin/env bash
# Put the Jupyter widget manager for static pages (@jupyter-widgets/html-manager, its
# standalone dist/embed.js and the fonts it loads) in a cache folder, so that the
# documentation site renders the lessons' stored widgets without a network.
#
# The package comes from the npm registry with `npm pack` (no dependencies, no install
# scripts: the tarball already holds the webpack bundle), pinned by version and by the
# registry's sha512. A second run is a no-op; after `make clean` npm's own cache serves it.
#
# Usage: scripts/fetch_widget_manager.sh [CACHE_DIR]   (default: .tools/html-manager-VERSION)
# Prints the folder holding embed.js.
set -euo pipefail
VERSION=1.0.15  # the html-manager of ipywidgets 8.1 (widget state version 2)
SHA512="5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA=="
cd "$(dirname "$0")/.."
dest="${1:-.tools/html-manager-$VERSION}"
if [ -f "$dest/embed.js" ]; then
  echo "$dest"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "fetch_widget_manager: npm not found; install it (apt-get install npm) to bundle" \
       "the widget manager of the documentation site." >&2
  exit 1
fi
mkdir -p "$(dirname "$dest")"
tmp="$(mktemp -d "$(dirname "$dest")/.html-manager.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
npm pack --silent --prefer-offline --pack-destination "$tmp" \
  "@jupyter-widgets/html-manager@$VERSION" >/dev/null
tgz="$tmp/jupyter-widgets-html-manager-$VERSION.tgz"
got="$(python3 -c 'import base64, hashlib, sys
print(base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tgz")"
if [ "$got" != "$SHA512" ]; then
  echo "fetch_widget_manager: $tgz does not match the pinned sha512; not using it." >&2
  exit 1
fi
tar -xzf "$tgz" -C "$tmp"
mkdir "$tmp/out"
# embed.js (no RequireJS needed), its licence notes, and the Font Awesome fonts browsers
# use (woff2, woff, ttf; the eot and svg variants are for browsers long gone)
cp "$tmp/package/dist/embed.js" "$tmp/package/dist/embed.js.LICENSE.txt" "$tmp/out/"
cp "$tmp/package/dist/"*.woff2 "$tmp/package/dist/"*.woff "$tmp/package/dist/"*.ttf "$tmp/out/"
cp "$tmp/package/package.json" "$tmp/out/"
rm -rf "$dest"
mv "$tmp/out" "$dest"
echo "$dest"
