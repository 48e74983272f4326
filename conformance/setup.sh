#!/usr/bin/env bash
# Installs what a real boot needs (when missing) and builds the recording module against the
# kernel's headers. Debian bookworm: the 6.12 kernel comes from bookworm-security/backports.
# Env: KVER (default: the newest installed or installable linux-image-6.12.*-amd64-unsigned).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

pick_kver() {
  local v
  v=$(ls /boot 2>/dev/null | sed -n 's/^vmlinuz-\(6\.12\.[0-9]*+deb12-amd64\)$/\1/p' | sort -V | tail -1)
  if [ -z "$v" ]; then
    v=$(apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$' |
      sed -n 's/^linux-image-\(6\.12\.[0-9]*+deb12-amd64\)-unsigned .*/\1/p' | sort -V | tail -1)
  fi
  echo "$v"
}

SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
KVER=${KVER:-$(pick_kver)}
if [ -z "$KVER" ]; then
  # A fresh container often has no package lists yet.
  $SUDO apt-get update -qq >&2
  KVER=$(pick_kver)
fi
[ -n "$KVER" ] || { echo "setup: no linux-image-6.12.*+deb12-amd64-unsigned in the apt sources (bookworm-security or backports)" >&2; exit 1; }

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
{ [ -x /bin/busybox ] && /bin/busybox --list | grep -x poweroff >/dev/null && ! ldd /bin/busybox >/dev/null 2>&1; } || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
command -v make >/dev/null || need+=(make)
command -v gcc >/dev/null || need+=(gcc)
[ -f "/boot/vmlinuz-$KVER" ] || need+=("linux-image-$KVER-unsigned")
[ -d "/lib/modules/$KVER/build" ] || need+=("linux-headers-$KVER")
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  $SUDO apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=900 "${need[@]}" >&2
fi

make -s -C "$here/module" KDIR="/lib/modules/$KVER/build" >&2
echo "$KVER"
