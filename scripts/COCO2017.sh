#!/usr/bin/env bash
# Download and unpack COCO 2017 into $1 (default ~/data/coco).
exec bash "$(dirname "$0")/coco_download.sh" 2017 "$@"
