#!/usr/bin/env bash
# Download and unpack COCO 2014 (train/val images + instances annotations) into $1 (default ~/data/coco).
set -euo pipefail
root="${1:-$HOME/data/coco}"
mkdir -p "$root" && cd "$root"
for zip in images/train2014.zip images/val2014.zip annotations/annotations_trainval2014.zip; do
    file=$(basename "$zip")
    [[ -f "$file" ]] || curl -fL --retry 3 -o "$file" "http://images.cocodataset.org/$zip"
    unzip -q -o "$file"
done
echo "COCO 2014 ready in $root (use --dataset COCO --dataset-root $root --sets train2014 --test-sets val2014)"
