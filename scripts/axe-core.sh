#!/usr/bin/env bash
# axe-core.sh — print the path of axe-core's axe.min.js, the accessibility checker the browser
# tests inject into the portal's pages (tests/support/browser.py), fetching it first if the
# cache does not hold it: the npm registry's tarball of AXE_VERSION, checked against the
# integrity the registry publishes for it, kept outside the checkout (as the test images
# are) in $ANDROMEDE_NPM_CACHE, /var/cache/andromede/npm unless set.
source "$(dirname "$0")/lib.sh"

AXE_VERSION=4.14.1
# `dist.integrity` of https://registry.npmjs.org/axe-core/4.14.1
AXE_INTEGRITY="sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
CACHE="${ANDROMEDE_NPM_CACHE:-/var/cache/andromede/npm}"
tarball="$CACHE/axe-core-$AXE_VERSION.tgz"
folder="$CACHE/axe-core-$AXE_VERSION"
script="$folder/package/axe.min.js"

integrity_of() { printf 'sha512-%s' "$(openssl dgst -sha512 -binary "$1" | base64 -w0)"; }

mkdir -p "$CACHE"
if [[ ! -f $tarball || $(integrity_of "$tarball") != "$AXE_INTEGRITY" ]]; then
    say "fetching axe-core $AXE_VERSION from the npm registry"
    partial="$(mktemp "$CACHE/.axe-core-XXXXXX.tgz")"
    trap 'rm -f "$partial"' EXIT
    curl -fsSL --connect-timeout 20 --max-time 120 --retry 2 -o "$partial" \
        "https://registry.npmjs.org/axe-core/-/axe-core-$AXE_VERSION.tgz"
    got="$(integrity_of "$partial")"
    [[ $got == "$AXE_INTEGRITY" ]] \
        || die "axe-core $AXE_VERSION does not match its published integrity (got $got, want $AXE_INTEGRITY)"
    chmod 644 "$partial"
    mv "$partial" "$tarball"
    rm -rf "$folder"
fi
# The unpacked copy must still be the verified tarball's.
if ! tar -xzOf "$tarball" package/axe.min.js 2>/dev/null | cmp -s - "$script"; then
    rm -rf "$folder"
    unpacked="$(mktemp -d "$CACHE/.axe-core-XXXXXX")"
    tar -xzf "$tarball" -C "$unpacked" --no-same-owner
    chmod -R a+rX "$unpacked"
    mv "$unpacked" "$folder"
fi
echo "$script"
