#!/usr/bin/env bash
# Vendor the KaTeX that the documentation site renders its math with, so that the built
# site needs no network: docs/assets/katex/ gets katex.min.js, katex.min.css (woff2 fonts
# only), fonts/*.woff2 and KaTeX's licence (MIT), about 600 kB. Needs npm. Re-run after
# changing VERSION and SHA256 (the SHA-256 of the tarball 'npm pack katex@VERSION' gives).
set -euo pipefail
VERSION=0.19.1
SHA256=24da5a599eb2fcede2e270b99a6ff48bca816beecc95feeb84e8cccbd1bb34fd
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/docs/assets/katex"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "katex@$VERSION" >/dev/null)
echo "$SHA256  $tmp/katex-$VERSION.tgz" | sha256sum --check --quiet
tar -xzf "$tmp/katex-$VERSION.tgz" -C "$tmp"
rm -rf "$DEST"
mkdir -p "$DEST/fonts"
cp "$tmp/package/dist/katex.min.js" "$tmp/package/LICENSE" "$DEST/"
cp "$tmp/package/dist/fonts/"*.woff2 "$DEST/fonts/"
# Every browser that runs KaTeX reads woff2: drop the woff and ttf alternatives, which are not
# vendored, so that the stylesheet names only files that exist.
sed -E 's/,url\(fonts\/[A-Za-z0-9_-]+\.(woff|ttf)\) format\("(woff|truetype)"\)//g' \
    "$tmp/package/dist/katex.min.css" > "$DEST/katex.min.css"
if grep -qE '\.(woff|ttf)\)' "$DEST/katex.min.css"; then
    echo "vendor_katex.sh: katex.min.css still names woff/ttf fonts; adjust the sed expression" >&2
    exit 1
fi
echo "$VERSION" > "$DEST/VERSION"
du -sh "$DEST"
