#!/usr/bin/env bash
# Download and unpack COCO <year> (train/val images + instances annotations) into <root>.
# Usage: bash scripts/coco_download.sh 2017|2014 [root, default ~/data/coco]
set -euo pipefail
year="$1"
root="${2:-$HOME/data/coco}"
mkdir -p "$root" && cd "$root"
for zip in "images/train$year.zip" "images/val$year.zip" "annotations/annotations_trainval$year.zip"; do
    file=$(basename "$zip")
    [[ -f "$file" ]] || curl -fL --retry 3 -o "$file" "http://images.cocodataset.org/$zip"
    unzip -q -o "$file"
done
echo "COCO $year ready in $root (use --dataset COCO --dataset-root $root --sets train$year --test-sets val$year)"
