#!/usr/bin/env bash
# Download and unpack COCO 2017 (train/val images + instances annotations) into $1 (default ~/data/coco).
set -euo pipefail
root="${1:-$HOME/data/coco}"
mkdir -p "$root" && cd "$root"
for zip in images/train2017.zip images/val2017.zip annotations/annotations_trainval2017.zip; do
    file=$(basename "$zip")
    [[ -f "$file" ]] || curl -fL --retry 3 -o "$file" "http://images.cocodataset.org/$zip"
    unzip -q -o "$file"
done
echo "COCO 2017 ready in $root (use --dataset COCO --dataset-root $root --sets train2017 --test-sets val2017)"
