#!/usr/bin/env bash
# The classic non-coherent DMA bug, driven against a running dmaemu (docs/walkthrough-stale-data.md):
# the CPU reads a DMA_FROM_DEVICE buffer without dma_sync_single_for_cpu() and sees its stale
# cache lines; after the sync it sees what the device wrote. Exits non-zero unless both the stale
# and the fresh bytes are exactly what the rules predict. Needs only bash and curl.
#
#   BASE=http://127.0.0.1:3999 examples/stale-data.sh
set -euo pipefail

BASE=${BASE:-http://127.0.0.1:3000}
BUF=0x81000000          # physical address of the driver's buffer
OLD=ERERERERERERERER    # 12 bytes of 0x11: what the CPU wrote before the transfer
NEW=////////////////    # 12 bytes of 0xff: what the device writes

post() { # post PATH JSON → prints the answer, fails on an HTTP error
  curl -sS --fail-with-body -H 'content-type: application/json' -d "$2" "$BASE$1"
}
field() { # field NAME JSON → the value of a top-level string or number field
  sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" <<<"$2"
}
step() { printf '\n== %s\n' "$1"; }

step 'create a session: non-coherent device behind a 4 KiB IOMMU (the defaults otherwise)'
session=$(post /v1/sessions '{"device":{"coherent":false}}')
id=$(field id "$session")
S=/v1/sessions/$id
echo "session $id"

step 'the CPU fills the buffer (its cache line now holds 0x11…, dirty)'
post "$S/cpu/write" "{\"phys\":\"$BUF\",\"data\":\"$OLD\"}"; echo

step 'dma_map_single(…, DMA_FROM_DEVICE): the line is cleaned to RAM, but stays in the cache'
map=$(post "$S/map_page" "{\"phys\":\"$BUF\",\"size\":4096,\"dir\":\"from_device\"}")
echo "$map"
handle=$(field handle "$map")
dma=$(field dma_address "$map")

step "the device writes 0xff… at $dma (through the IOMMU, into RAM)"
post "$S/device/write" "{\"dma_address\":\"$dma\",\"data\":\"$NEW\"}"; echo

step 'the driver reads the buffer WITHOUT dma_sync_single_for_cpu: stale'
stale=$(post "$S/cpu/read" "{\"phys\":\"$BUF\",\"length\":12}")
echo "$stale"

step 'dma_sync_single_for_cpu(…, DMA_FROM_DEVICE): invalidate'
post "$S/sync" "{\"handle\":$handle,\"for\":\"cpu\"}"; echo

step 'the driver reads again: fresh'
fresh=$(post "$S/cpu/read" "{\"phys\":\"$BUF\",\"length\":12}")
echo "$fresh"

step 'dma_unmap_single, then delete the session (no leak)'
post "$S/unmap" "{\"handle\":$handle}"; echo
curl -sS --fail-with-body -X DELETE "$BASE$S"; echo

status=0
if [[ $(field data "$stale") != "$OLD" ]]; then
  echo "FAIL: before the sync the CPU should read its stale bytes $OLD, got: $stale" >&2
  status=1
fi
if [[ $(field data "$fresh") != "$NEW" ]]; then
  echo "FAIL: after the sync the CPU should read the device's bytes $NEW, got: $fresh" >&2
  status=1
fi
[[ $status -eq 0 ]] && printf '\nOK: stale %s before sync_for_cpu, fresh %s after\n' "$OLD" "$NEW"
exit $status
