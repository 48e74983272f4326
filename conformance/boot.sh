#!/usr/bin/env bash
# Boots a kernel in QEMU (q35, emulated Intel IOMMU without interrupt remapping, one CPU, one
# edu device per sequence) and writes the console log (the DMAEMU lines) and the raw dma trace
# (second serial port).
# Usage: boot.sh VMLINUZ INITRD CONSOLE_LOG TRACE_LOG
# Env: DEVICES (edu devices, default 28: at least one per sequence in module/dmaemu_probe.c;
#      a device beyond the kernel's sequences is left unbound),
#      APPEND (extra kernel command line, e.g. "intel_iommu=off swiotlb=force"),
#      MEM (guest RAM in MiB, default 1024),
#      BOOT_TIMEOUT (seconds per attempt, default 300), ACCEL (kvm | tcg; default: KVM when
#      /dev/kvm opens and a guest really starts, else TCG).
set -euo pipefail
image=$1 initrd=$2 console=$3 trace=$4
devices=${DEVICES:-28}
edu=()
for ((i = 0; i < devices; i++)); do edu+=(-device edu); done

boot() { # $1: accel, $2: cpu model
  : > "$console"
  : > "$trace"
  timeout "${BOOT_TIMEOUT:-300}" qemu-system-x86_64 \
    -accel "$1" -cpu "$2" -machine q35 -smp 1 -m "${MEM:-1024}" \
    -nographic -no-reboot -monitor none \
    -device intel-iommu,intremap=off \
    "${edu[@]}" \
    -kernel "$image" -initrd "$initrd" \
    -append "console=ttyS0 intel_iommu=on iommu.strict=1 iommu.passthrough=0 panic=-1 rdinit=/init${APPEND:+ $APPEND}" \
    -serial "file:$console" -serial "file:$trace"
}

finished() { grep -q 'DMAEMU-FINISHED' "$console"; }

accel=${ACCEL:-}
if [ -z "$accel" ] || [ "$accel" = kvm ]; then
  if [ -r /dev/kvm ] && [ -w /dev/kvm ] && boot kvm host 2>"$console.kvm-err" && finished; then
    echo "boot: kvm" >&2
    exit 0
  fi
  # Nested or restricted KVM often refuses the guest (e.g. "failed to set MSR"): TCG runs anywhere.
  [ "$accel" = kvm ] && { cat "$console.kvm-err" >&2; exit 1; }
  [ -s "$console.kvm-err" ] && echo "boot: kvm unusable here ($(head -1 "$console.kvm-err")); using tcg" >&2
fi
# Interrupt remapping is off (it plays no part in DMA mapping) because under TCG the kernel's
# IO-APIC timer check through remapped interrupts sometimes panics; a second attempt covers any
# other one-off failure of an emulated boot.
boot tcg max || true
if ! finished; then
  echo "boot: the guest did not finish; trying once more" >&2
  boot tcg max || true
fi
finished || { echo "boot: the guest did not finish (see $console)" >&2; exit 1; }
echo "boot: tcg" >&2
