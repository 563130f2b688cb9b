#!/usr/bin/env bash
# Refreshes (or, with --check, verifies) the dashboard's vendored front-end files from the
# npm registry, as listed in crates/relance/src/ui/assets/vendor/SOURCES.
set -euo pipefail
cd "$(dirname "$0")/.."
vendor=crates/relance/src/ui/assets/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
grep -v '^#' "$vendor/SOURCES" | while read -r package version file sha; do
    [ -n "$package" ] || continue
    (cd "$work" && npm pack --silent "$package@$version" >/dev/null && mkdir -p "$package" && tar xzf ./*.tgz -C "$package" && rm ./*.tgz)
    got=$(sha256sum "$work/$package/package/$file" | cut -d' ' -f1)
    if [ "$got" != "$sha" ]; then
        echo "$package@$version $file: sha256 $got, SOURCES says $sha" >&2
        exit 1
    fi
    target="$vendor/$(basename "$file")"
    if [ "${1:-}" = --check ]; then
        cmp -s "$work/$package/package/$file" "$target" || { echo "$target differs from $package@$version" >&2; exit 1; }
        echo "ok: $target = $package@$version $file"
    else
        cp "$work/$package/package/$file" "$target"
        echo "copied $package@$version $file → $target"
    fi
done
