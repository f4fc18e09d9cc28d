#!/usr/bin/env bash
# Download and unpack PASCAL VOC2007 trainval + test into $1 (default ~/data), giving $1/VOCdevkit/VOC2007.
set -euo pipefail
root="${1:-$HOME/data}"
mkdir -p "$root" && cd "$root"
base=http://host.robots.ox.ac.uk/pascal/VOC/voc2007
for tar in VOCtrainval_06-Nov-2007.tar VOCtest_06-Nov-2007.tar; do
    [[ -f "$tar" ]] || curl -fL --retry 3 -o "$tar" "$base/$tar"
    tar -xf "$tar"
done
echo "VOC2007 ready in $root/VOCdevkit/VOC2007 (use --dataset-root $root/VOCdevkit)"
