#!/usr/bin/env bash
# npm run conformance: records the real kernels again and compares dmaemu with each.
# Per kernel (KERNELS, default "6.12 7": Debian's 6.12 and the newest 7.x of trixie-backports)
# and per machine (MODES, default "intel-iommu swiotlb-force no-iommu"):
#   1. setup.sh: installs QEMU, busybox-static, cpio, debootstrap when missing, fetches the
#      kernel and its headers into conformance/cache/ (.gitignored) and builds the module;
#   2. build-initramfs.sh + boot.sh: one boot, KVM when it works here, TCG otherwise;
#      intel-iommu: the emulated IOMMU on (a fresh domain per device);
#      swiotlb-force: the same machine booted with `intel_iommu=off swiotlb=force`, so
#      dma-direct bounces every mapping through the boot's one swiotlb pool;
#      no-iommu: `intel_iommu=off` with 6 GiB of RAM, so x86 sets up its swiotlb pool (RAM
#      above 4 GiB) and dma-direct bounces only what a device's mask cannot reach;
#   3. compare.ts: replays every recorded call through dmaemu and prints one line per boot,
#      `conformance: N ops, 0 mismatches (linux X.Y intel-iommu)`.
# Outputs land in conformance/out/<series>-<mode>/. UPDATE_FIXTURES=1 also copies each new
# recording and trace over test/kernel-recordings/linux-X.Y-<mode>.* (phys addresses differ
# from boot to boot, so a re-recording always changes the fixtures even when dmaemu agrees).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
status=0
for series in ${KERNELS:-6.12 7}; do
  t0=$(date +%s)
  kver= image= ko=
  read -r kver image ko < <("$here/setup.sh" "$series") || true
  [ -n "$ko" ] || { echo "conformance: setup of linux $series failed" >&2; status=1; continue; }
  t1=$(date +%s)
  echo "conformance: linux $kver: setup $((t1 - t0)) s" >&2
  for mode in ${MODES:-intel-iommu swiotlb-force no-iommu}; do
    case "$mode" in
    intel-iommu) append= mem=1024 ;;
    swiotlb-force) append="intel_iommu=off swiotlb=force" mem=1024 ;;
    no-iommu) append="intel_iommu=off" mem=6144 ;;
    *) echo "conformance: unknown mode $mode" >&2; status=1; continue ;;
    esac
    out="$here/out/$series-$mode"
    mkdir -p "$out"
    t1=$(date +%s)
    "$here/build-initramfs.sh" "$out/initramfs.cpio.gz" "$ko"
    if ! APPEND="$append" MEM="$mem" "$here/boot.sh" "$image" "$out/initramfs.cpio.gz" "$out/console.log" "$out/trace.txt"; then
      status=1
      continue
    fi
    t2=$(date +%s)
    grep -o 'DMAEMU {.*' "$out/console.log" > "$out/recording.jsonl"
    echo "conformance: linux $kver $mode: boot $((t2 - t1)) s, $(wc -l < "$out/recording.jsonl") lines" >&2
    (cd "$root" && npx tsx conformance/compare.ts "$out/recording.jsonl" "$out/trace.txt") || status=1
    if [ "${UPDATE_FIXTURES:-0}" = 1 ]; then
      name=linux-$(echo "$kver" | cut -d. -f1,2)-$mode
      gzip -9n < "$out/recording.jsonl" > "$root/test/kernel-recordings/$name.jsonl.gz"
      gzip -9n < "$out/trace.txt" > "$root/test/kernel-recordings/$name.trace.gz"
      echo "conformance: fixtures $name.* updated in test/kernel-recordings/" >&2
    fi
  done
done
exit "$status"
