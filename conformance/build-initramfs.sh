#!/usr/bin/env bash
# Builds the guest's initramfs (cpio.gz): a static busybox, the recording module and an /init
# that turns the kernel's dma tracepoints on, loads the module (its probe runs every sequence
# and prints the DMAEMU lines on the console), writes the raw trace to the second serial port
# and powers off.  Usage: build-initramfs.sh OUT.cpio.gz MODULE.ko
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(realpath -m "$1")
ko=$2
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

mkdir -p "$root"/{bin,dev,proc,sys,tmp}
cp /bin/busybox "$root/bin/busybox"
cp "$ko" "$root/dmaemu_probe.ko"
cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
T=/sys/kernel/tracing
mount -t tracefs tracefs $T 2>/dev/null
if [ -d $T/events/dma ]; then
  echo 32768 > $T/buffer_size_kb
  echo 1 > $T/events/dma/enable
  echo "DMAEMU-TRACE dma tracepoints on: $(ls $T/events/dma | tr '\n' ' ')"
else
  echo "DMAEMU-TRACE no events/dma in this kernel"
fi
insmod /dmaemu_probe.ko
[ -d $T/events/dma ] && echo 0 > $T/events/dma/enable && cat $T/trace > /dev/ttyS1
echo "DMAEMU-FINISHED"
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet | gzip -9) > "$out"
