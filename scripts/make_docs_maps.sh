#!/usr/bin/env bash
# The routing pictures of the README ("Your own images"), made by adaptsr-infer itself: a 128x96 crop of Urban100
# img_012 (LR x4; sky between buildings) super-resolved by each method with --maps; the maps and the CSV rows are
# copied to docs/maps/. Needs ADAPTSR_BENCHMARK, ADAPTSR_WEIGHTS and the 291-set APE/CABM models (README).
#   bash scripts/make_docs_maps.sh                  # all: pcsr ape ape_edsr cabm smsr
#   bash scripts/make_docs_maps.sh ape_edsr         # only the maps named
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv ] && source .venv/bin/activate
: "${ADAPTSR_BENCHMARK:=datasets/benchmark}"
: "${ADAPTSR_WEIGHTS:=weights/official}"
APE=${APE_MODEL:-experiments/ape_ecbsr_m6c40_x4_291/models/net_g_latest.pth}
APE_EDSR=${APE_EDSR_MODEL:-experiments/ape_edsr_baseline_x4_291/models/net_g_latest.pth}
CABM=${CABM_MODEL:-experiments/cabm_ecbsr_m6c40_x4_291/models/net_g_latest.pth}
known=(pcsr ape ape_edsr cabm smsr)  # the maps the loop below makes
maps=("$@")
[ ${#maps[@]} -gt 0 ] || maps=("${known[@]}")
for m in "${maps[@]}"; do  # refused before any work
  [[ " ${known[*]} " == *" $m "* ]] || { echo "make_docs_maps.sh: unknown map '$m' (${known[*]})" >&2; exit 2; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python - "$ADAPTSR_BENCHMARK/Urban100/LR_bicubic/X4/img_012x4.png" "$tmp/urban012_crop.png" <<'PY'
import sys
import cv2
img = cv2.imread(sys.argv[1])
if img is None:
    sys.exit(f'{sys.argv[1]}: not found (set ADAPTSR_BENCHMARK)')
cv2.imwrite(sys.argv[2], img[0:96, 64:192])
PY
infer() { python -m adaptsr.cli.infer "$tmp/urban012_crop.png" -o "$tmp/$1" --maps --quiet "${@:2}"; }
for m in "${maps[@]}"; do
  case $m in
    pcsr) infer pcsr --model "$ADAPTSR_WEIGHTS/PCSR/carn-pcsr-phase1/iter_last.pth" --k 0 ;;
    ape) infer ape --model "$APE" --exit-threshold 0.4 ;;
    ape_edsr) infer ape_edsr --model "$APE_EDSR" --exit-threshold "${APE_EDSR_THRESHOLD:-0.9}" ;;
    cabm) infer cabm --model "$CABM" --calibration 7.4 --tile 48 ;;  # 48-pixel decision tiles (default 96)
    smsr) infer smsr --model "$ADAPTSR_WEIGHTS/SMSR/SMSR_x2_model_1000.pt" ;;
  esac
done
mkdir -p docs/maps
for m in "${maps[@]}"; do
  for f in "$tmp/$m"/urban012_crop_*.png; do cp "$f" "docs/maps/${m}_${f##*_}"; done
  cp "$tmp/$m/adaptsr_infer.csv" "docs/maps/${m}.csv"
done
ls -la docs/maps
