#!/usr/bin/env bash
# Set up the environment (only what is missing), then the offline demo.
#   scripts/demo.sh              the transfer suite's demo subset: the shipped tiny
#                                Grounding DINO base, the realignment shift at k=10,
#                                zero-shot vs SDPT vs CoOp text prompts at fixed learning
#                                rates, 3 seeds, the suite's protocol (pinned numerics,
#                                warm-up + cosine); about 8 min on 2 cores
#   NUMERICS=aten-default scripts/demo.sh   the same with perturbed arithmetic
#                                (also mkl-compatible, threads-2)
#   DEMO=glip scripts/demo.sh    the pipeline on the tiny GLIP with a random base
#   DEMO=gdino scripts/demo.sh   the same on the tiny Grounding DINO
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/setup_env.sh
py="${VENV:-$repo/.venv}/bin/python"
export PYTHONWARNINGS=ignore
demo="${DEMO:-transfer}"
if [ "$demo" = transfer ]; then
  numerics="${NUMERICS:-pinned}"
  work="work_dirs/transfer_demo"
  [ "$numerics" = pinned ] || work="work_dirs/transfer_demo_$numerics"
  workers=2  # one thread per run; threads-2 fills both cores with one run
  [ "$numerics" = threads-2 ] && workers=1
  "$py" tools/transfer_benchmark.py --detectors gdino --shifts realignment \
      --methods zero_shot sdpt text --shots 10 --seeds 3 30 300 --extra-seeds \
      --lr sdpt=1 text=0.01 --workers $workers --numerics "$numerics" --work-dir "$work"
  echo "demo done: table in $work/transfer.md"
  exit 0
fi
config="configs/demo/sdpt_${demo}_tiny_demo.py"
work_dir="work_dirs/sdpt_${demo}_tiny_demo"
"$py" tools/make_demo_assets.py
"$py" tools/train.py "$config" --work-dir "$work_dir"
"$py" tools/test.py "$config" "$work_dir/iter_40.pth" \
    --work-dir "$work_dir/test" --out "$work_dir/test/predictions.pkl"
echo "demo done: logs, prompt checkpoints and predictions in $work_dir"
