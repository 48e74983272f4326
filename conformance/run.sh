#!/usr/bin/env bash
# npm run conformance: records the real kernel again and compares dmaemu with it.
#   1. setup.sh: installs QEMU, busybox-static, the 6.12 kernel and headers when missing and
#      builds module/dmaemu_probe.ko;
#   2. build-initramfs.sh + boot.sh: one boot, KVM when it works here, TCG otherwise;
#   3. compare.ts: replays every recorded call through dmaemu and prints the conformance line.
# Outputs land in conformance/out/. UPDATE_FIXTURES=1 also copies the new recording and trace
# over test/kernel-recordings/ (phys addresses differ from boot to boot, so a re-recording
# always changes the fixtures even when dmaemu agrees).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out="$here/out"
mkdir -p "$out"
t0=$(date +%s)
kver=$("$here/setup.sh")
t1=$(date +%s)
"$here/build-initramfs.sh" "$out/initramfs.cpio.gz"
"$here/boot.sh" "$kver" "$out/initramfs.cpio.gz" "$out/console.log" "$out/trace.txt"
t2=$(date +%s)
grep -o 'DMAEMU {.*' "$out/console.log" > "$out/recording.jsonl"
echo "conformance: setup ${kver} $((t1 - t0)) s, boot $((t2 - t1)) s, $(wc -l < "$out/recording.jsonl") lines" >&2
cd "$root"
status=0
npx tsx conformance/compare.ts "$out/recording.jsonl" "$out/trace.txt" || status=$?
if [ "${UPDATE_FIXTURES:-0}" = 1 ]; then
  gzip -9n < "$out/recording.jsonl" > test/kernel-recordings/linux-6.12-intel-iommu.jsonl.gz
  gzip -9n < "$out/trace.txt" > test/kernel-recordings/linux-6.12-intel-iommu.trace.gz
  echo "conformance: fixtures updated in test/kernel-recordings/" >&2
fi
exit "$status"
