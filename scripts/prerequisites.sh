#!/usr/bin/env bash
# Checks, before anything is built, everything scripts/test.sh needs; as root on Debian it
# installs the missing system packages, otherwise it names each missing piece and how to
# get it, and exits 1. Nothing here is needed to *run* Relance (cargo and a C compiler are).
#
#   RELANCE_SKIP_ROOT_TESTS=1  skip the disk-full / read-only tests (they mount a tmpfs and a
#                              loop device, so they need root) instead of failing here.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()      # what cannot be installed from here, with how to get it
packages=()     # Debian packages to install
root=0
[[ "$(id -u)" == "0" ]] && root=1

need_cmd() { # command, debian package, what it is for
  command -v "$1" >/dev/null 2>&1 && return 0
  packages+=("$2")
  missing+=("$1 ($3): apt-get install $2")
}

# The toolchain: rustup's, not a package.
if ! command -v cargo >/dev/null 2>&1; then
  missing+=("cargo and rustc 1.89 or later: https://rustup.rs")
else
  rust_minor="$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')"
  if [[ "$rust_minor" =~ ^[0-9]+$ ]] && (( rust_minor < 89 )); then
    missing+=("rustc 1.89 or later (found $(rustc --version)): rustup update stable")
  fi
fi
need_cmd cc build-essential "C compiler for the embedded SQLite"
need_cmd c++ build-essential "C++ compiler for libFuzzer (the fuzz smoke)"
need_cmd curl curl "health checks in the scripts"
need_cmd python3 python3 "the README test, free ports, the API checks"
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  packages+=(python3-venv)
  missing+=("python3 venv (the API checks install their tools from PyPI): apt-get install python3-venv")
fi
need_cmd npm npm "playwright-core for the browser tests"
need_cmd chromium chromium "the dashboard's browser tests"
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  packages+=(postgresql)
  missing+=("PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql")
fi
if [[ "${RELANCE_SKIP_ROOT_TESTS:-0}" != "1" ]]; then
  need_cmd mkfs.ext4 e2fsprogs "the read-only disk test"
  need_cmd losetup mount "the read-only disk test"
  if (( ! root )); then
    missing+=("root, for the disk-full and read-only tests (tmpfs, loop device): run as root, or set RELANCE_SKIP_ROOT_TESTS=1")
  fi
fi

# Disk: a full run leaves about 9 GB in target/ (see README, Tests).
free_gb="$(df -Pk . | awk 'NR==2 {print int($4 / 1024 / 1024)}')"
if (( free_gb < 12 )); then
  missing+=("disk space: ${free_gb} GB free here, the full run needs about 12 GB")
fi

if (( ${#packages[@]} )) && (( root )) && command -v apt-get >/dev/null 2>&1 \
    && [[ "${RELANCE_PREREQUISITES_INSTALLED:-0}" != "1" ]]; then
  mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)
  echo "== installing Debian packages: ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${packages[@]}" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get install -y -qq "${packages[@]}" >/dev/null; }
  RELANCE_PREREQUISITES_INSTALLED=1 exec "$0" "$@"   # check again, now with the packages
fi

if (( ${#missing[@]} )); then
  echo "scripts/test.sh cannot run yet; missing:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  (( root )) || echo "(as root on Debian, the packages are installed for you)" >&2
  exit 1
fi
echo "== prerequisites: all present"
