#!/usr/bin/env bash
# Installs what a real boot needs (when missing) and builds the recording module against the
# kernel's headers. Prints one line: KVER VMLINUZ MODULE (the release, the image to boot, the
# module built for it).
# Usage: setup.sh [SERIES]   SERIES: 6.12 (default) or 7 (the newest 7.x trixie-backports has)
# Env: KVER (an exact release, e.g. 6.12.57+deb12-amd64 or 7.3.4+deb13-amd64),
#      CONFORMANCE_CACHE (default conformance/cache/, .gitignored).
#
# 6.12: the host is Debian bookworm; the image, headers and kbuild come from its own sources
#       (bookworm-security) with `apt-get download` and are unpacked in the cache (the
#       headers' Makefile pointed there), never installed on the host.
# 7.x:  nothing of the host's apt sources changes. A private apt configuration under the cache
#       reads trixie + trixie-backports; `apt-get download` fetches the unsigned image (in 7.x
#       the package linux-binary-unsigned-KVER, file vmlinuz.unsigned) and it is unpacked in
#       the cache. The headers' kbuild needs trixie's libc, so the module is built in a
#       `debootstrap --variant=minbase trixie` chroot (cached) holding gcc, make and
#       linux-headers-KVER.
# Idempotent: every step is skipped when its result is already in the cache.
# 7.x needs root for the chroot (debootstrap, chroot, mounting /proc): run it as root, as CI
# does; those three steps go through sudo otherwise, the rest of the chroot's files do not.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
series=${1:-6.12}
cache=$(realpath -m "${CONFORMANCE_CACHE:-$here/cache}")
mkdir -p "$cache"
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
log() { echo "setup: $*" >&2; }

host_install() { # packages missing on the host
  [ $# -gt 0 ] || return 0
  log "installing on the host: $*"
  if ! $SUDO apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=900 "$@" >&2; then
    # a fresh container often has no package lists yet
    $SUDO apt-get update -qq >&2
    $SUDO apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=900 "$@" >&2
  fi
}

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
{ [ -x /bin/busybox ] && /bin/busybox --list | grep -x poweroff >/dev/null && ! ldd /bin/busybox >/dev/null 2>&1; } || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)

# Runs a command in the trixie chroot: without the host's APT_CONFIG, with /proc mounted
# (objtool reads /proc/self/limits) for the command's duration only.
in_chroot() {
  local root=$1; shift
  local mounted=
  if ! mountpoint -q "$root/proc"; then $SUDO mount -t proc proc "$root/proc" && mounted=1; fi
  local rc=0
  $SUDO env -u APT_CONFIG chroot "$root" "$@" >&2 || rc=$?
  [ -z "$mounted" ] || $SUDO umount "$root/proc"
  return "$rc"
}

# Builds the module from a copy of module/ (one build directory per kernel release), so two
# kernels' objects never mix. $1: KDIR, $2: build directory, $3 (optional): chroot.
build_module() {
  local kdir=$1 dir=$2 root=${3:-}
  if [ -f "$dir/dmaemu_probe.ko" ] && [ "$dir/dmaemu_probe.ko" -nt "$here/module/dmaemu_probe.c" ] &&
    [ "$(cat "$dir/.kdir" 2>/dev/null)" = "$kdir" ]; then return 0; fi
  rm -rf "$dir" && mkdir -p "$dir"
  cp "$here/module/dmaemu_probe.c" "$here/module/Makefile" "$dir/"
  if [ -z "$root" ]; then
    make -s -C "$dir" KDIR="$kdir" >&2
  else
    local inside=${dir#"$root"}
    in_chroot "$root" make -s -C "$inside" KDIR="$kdir"
  fi
  echo "$kdir" > "$dir/.kdir"
}

case "$series" in
6.12)
  command -v make >/dev/null || need+=(make)
  command -v gcc >/dev/null || need+=(gcc)
  host_install "${need[@]}"
  # The newest 6.12 the host's own sources hold (bookworm-security): downloaded and unpacked in
  # the cache, never installed (an installed image pulls in initramfs-tools, udev and their
  # triggers: 14.6 min here, most of it update-initramfs on a shared CPU).
  pick_kver() {
    apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$' 2>/dev/null |
      sed -n 's/^linux-image-\(6\.12\.[0-9]*+deb12-amd64\)-unsigned .*/\1/p' | sort -V | tail -1
  }
  KVER=${KVER:-$(pick_kver)}
  if [ -z "$KVER" ]; then
    $SUDO apt-get update -qq >&2
    KVER=$(pick_kver)
  fi
  [ -n "$KVER" ] || { log "no linux-image-6.12.*+deb12-amd64-unsigned in the apt sources (bookworm-security or backports)"; exit 1; }
  base=${KVER%-amd64}
  kdir="$cache/$KVER"
  root="$kdir/root"
  if [ ! -f "$kdir/.dmaemu-ready" ]; then
    log "downloading linux-image-$KVER-unsigned, its headers and kbuild (unpacked in $kdir, not installed)"
    rm -rf "$kdir" && mkdir -p "$kdir/debs"
    (cd "$kdir/debs" && apt-get download -q "linux-image-$KVER-unsigned" "linux-headers-$KVER" "linux-headers-$base-common" "linux-kbuild-$base" >&2)
    for deb in "$kdir"/debs/*.deb; do dpkg-deb -x "$deb" "$root"; done
    cp "$root/boot/vmlinuz-$KVER" "$kdir/vmlinuz"
    # the headers' Makefile includes the common tree by its absolute /usr/src path
    sed -i "s|^include /usr/src/|include $root/usr/src/|" "$root/usr/src/linux-headers-$KVER/Makefile"
    rm -rf "$kdir/debs" "$root/lib/modules" "$root/usr/lib/modules"
    touch "$kdir/.dmaemu-ready"
  fi
  build_module "$root/usr/src/linux-headers-$KVER" "$cache/build-$KVER"
  echo "$KVER $kdir/vmlinuz $cache/build-$KVER/dmaemu_probe.ko"
  ;;
7 | 7.*)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  host_install "${need[@]}"
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
  apt="$cache/apt"
  mkdir -p "$apt"/etc/apt/{apt.conf.d,preferences.d,sources.list.d} "$apt"/lists/partial "$apt"/archives/partial
  touch "$apt/status"
  cat > "$apt/etc/apt/sources.list" <<EOF
deb [signed-by=$keyring] $mirror trixie main
deb [signed-by=$keyring] $mirror trixie-backports main
EOF
  cat > "$apt/apt.conf" <<EOF
Dir::State "$apt/";
Dir::State::lists "$apt/lists/";
Dir::State::status "$apt/status";
Dir::Cache "$apt/";
Dir::Cache::archives "$apt/archives/";
Dir::Etc "$apt/etc/apt/";
Dir::Etc::Trusted "/etc/apt/trusted.gpg";
Dir::Etc::TrustedParts "/etc/apt/trusted.gpg.d/";
APT::Architecture "amd64";
APT::Sandbox::User "root";
EOF
  export APT_CONFIG="$apt/apt.conf"
  # The newest 7.x (or 7.N.x for SERIES 7.N) the private sources hold.
  pick_kver() {
    local re='7\.[0-9]+'
    [ "$series" = 7 ] || re=${series//./\\.}
    apt-cache search --names-only "^linux-binary-unsigned-${re}\.[0-9]+\+deb13-amd64\$" 2>/dev/null |
      sed -n 's/^linux-binary-unsigned-\(7\.[0-9.]*+deb13-amd64\) .*/\1/p' | sort -V | tail -1
  }
  KVER=${KVER:-$(pick_kver)}
  if [ -z "$KVER" ]; then
    log "reading trixie and trixie-backports (private apt configuration in $apt)"
    apt-get update -qq >&2
    KVER=$(pick_kver)
  fi
  [ -n "$KVER" ] || { log "no linux-binary-unsigned-$series.*+deb13-amd64 in trixie-backports"; exit 1; }
  kdir="$cache/$KVER"
  if [ ! -f "$kdir/vmlinuz" ]; then
    log "downloading linux-binary-unsigned-$KVER"
    mkdir -p "$kdir"
    (cd "$apt/archives" && apt-get download -q "linux-binary-unsigned-$KVER" >&2)
    deb=$(ls "$apt/archives"/linux-binary-unsigned-"$KVER"_*.deb | sort -V | tail -1)
    rm -rf "$kdir/pkg" && dpkg-deb -x "$deb" "$kdir/pkg"
    img=$(find "$kdir/pkg" -name 'vmlinuz*' -type f | head -1)
    [ -n "$img" ] || { log "no vmlinuz in $deb"; exit 1; }
    cp "$img" "$kdir/vmlinuz.part" && mv "$kdir/vmlinuz.part" "$kdir/vmlinuz"
    rm -rf "$kdir/pkg"
  fi
  root="$cache/trixie-root"
  if [ ! -f "$root/.dmaemu-ready" ]; then
    log "debootstrap --variant=minbase trixie into $root"
    $SUDO rm -rf "$root"
    $SUDO debootstrap --variant=minbase --keyring="$keyring" trixie "$root" "$mirror" >&2
    echo "deb $mirror trixie-backports main" | $SUDO tee "$root/etc/apt/sources.list.d/backports.list" >/dev/null
    in_chroot "$root" apt-get update -qq
    in_chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc make
    touch "$root/.dmaemu-ready"
  fi
  if [ ! -d "$root/usr/src/linux-headers-$KVER" ]; then
    log "installing linux-headers-$KVER in the chroot"
    in_chroot "$root" apt-get update -qq
    in_chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "linux-headers-$KVER"
  fi
  build_module "/usr/src/linux-headers-$KVER" "$root/build/$KVER" "$root"
  echo "$KVER $kdir/vmlinuz $root/build/$KVER/dmaemu_probe.ko"
  ;;
*)
  log "unknown series $series (6.12 or 7)"
  exit 2
  ;;
esac
