#!/usr/bin/env bash
# Builds the Debian package from the repository: the release binary, the hardened unit,
# /etc/relance/relance.toml and /etc/relance/env as conffiles, the docs.
#
#   scripts/package-deb.sh [OUT_DIR]        # → OUT_DIR/relance_<version>_<arch>.deb
#
# RELANCE_BINARY=path skips the build and packages that binary.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/debian}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
binary=${RELANCE_BINARY:-target/release/relance}
if [[ -z "${RELANCE_BINARY:-}" ]]; then
  cargo build --release -p relance --bin relance
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
install -D -m 0755 "$binary" "$root/usr/bin/relance"
install -D -m 0644 packaging/debian/relance.service "$root/lib/systemd/system/relance.service"
install -D -m 0644 packaging/debian/relance.toml "$root/etc/relance/relance.toml"
install -D -m 0600 packaging/debian/env "$root/etc/relance/env"
for doc in README.md docs/deploying.md docs/reliability.md docs/brevo.md docs/rules.md; do
  install -D -m 0644 "$doc" "$root/usr/share/doc/relance/$(basename "$doc")"
done
install -d "$root/DEBIAN"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
printf '/etc/relance/relance.toml\n/etc/relance/env\n' > "$root/DEBIAN/conffiles"
size=$(du -sk "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: relance
Version: $version
Architecture: $arch
Maintainer: Relance developers <relance@localhost>
Installed-Size: $size
Depends: adduser, libc6
Section: net
Priority: optional
Homepage: https://github.com/relance/relance
Description: event-driven marketing automation for Brevo and Power Automate
 Brevo email events and website behaviour in; lead scores, tags, segments and
 follow-ups (Brevo emails and SMS, signed webhooks, Power Automate) out.
 Embedded SQLite by default, PostgreSQL for several instances.
CONTROL
mkdir -p "$out"
deb="$out/relance_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
echo "$deb"
