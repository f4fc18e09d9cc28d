#!/usr/bin/env bash
# Download and unpack PASCAL VOC2012 trainval into $1 (default ~/data), giving $1/VOCdevkit/VOC2012.
set -euo pipefail
root="${1:-$HOME/data}"
mkdir -p "$root" && cd "$root"
tar=VOCtrainval_11-May-2012.tar
[[ -f "$tar" ]] || curl -fL --retry 3 -o "$tar" "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/$tar"
tar -xf "$tar"
echo "VOC2012 ready in $root/VOCdevkit/VOC2012 (use --dataset-root $root/VOCdevkit)"
