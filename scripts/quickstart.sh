#!/usr/bin/env bash
# Quick start (A): set up the environment, build the demo data, train PCSR-CARN x4 through both phases with the
# demo schedule, then run the adaptive test with a budget sweep (table per budget, SR images, trade-off plot) and
# the side-by-side bench against bicubic, and adaptsr-infer on the validation photos with the classification maps.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. .venv/bin/activate
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
adaptsr-prepare demo
adaptsr-train -opt pcsr_carn_x4_demo 2>&1 | grep -E "Entering phase|Validation|psnr|gflops|heavy|iter:.*00,|End of|Error" || true
test -f experiments/pcsr_carn_x4_demo/models/net_g_latest.pth
adaptsr-test -opt pcsr_carn_x4_demo 2>&1 | sed -n '/Budget sweep/,/^$/p' | grep -v "^$" || true
test -f results/pcsr_carn_x4_demo/demo_val_sweep.csv
adaptsr-bench -opt pcsr_carn_x4_demo -o results/pcsr_carn_x4_demo/bench.json --overwrite
# the trained model on images as a user has them (README "Your own images"): SR, classification maps, a CSV row each
adaptsr-infer datasets/demo/val/LR_bicubic/X4 -o results/pcsr_carn_x4_demo/infer --overwrite --quiet --maps \
    --model experiments/pcsr_carn_x4_demo/models/net_g_latest.pth --hr datasets/demo/val/HR
echo "SR images: results/pcsr_carn_x4_demo/visualization/demo_val/  plot: results/pcsr_carn_x4_demo/demo_val_sweep.png"
echo "adaptsr-infer: results/pcsr_carn_x4_demo/infer/ (*_classes.png: pixels on the heavy upsampler, adaptsr_infer.csv)"
