#!/usr/bin/env bash
# Download ssd.pytorch's VGG16 reduced-fc backbone (and with --ssd its trained VOC SSD300) into weights/,
# checking the SHA-256 of each file.
set -euo pipefail
cd "$(dirname "$0")/../weights"
fetch() {  # url file sha256
    if [[ ! -f "$2" ]]; then
        curl -fL --retry 3 -o "$2.part" "$1"
        mv "$2.part" "$2"
    fi
    echo "$3  $2" | sha256sum -c - || { echo "checksum mismatch for weights/$2: delete it and retry"; exit 1; }
}
fetch https://s3.amazonaws.com/amdegroot-models/vgg16_reducedfc.pth vgg16_reducedfc.pth \
    633cb3a85c60f76737114bf41c8f8a7c8d23cc1215e4b44812fb068a09022d5f
if [[ "${1:-}" == "--ssd" ]]; then
    fetch https://s3.amazonaws.com/amdegroot-models/ssd300_mAP_77.43_v2.pth ssd300_mAP_77.43_v2.pth \
        3d147eb48c8f3771101e12ff14d8105b935d2e4e08fa471e2ee5a2426c20d61e
fi
