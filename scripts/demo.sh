#!/usr/bin/env bash
# Set up the environment (only what is missing), write the offline demo assets,
# prompt-tune the tiny GLIP demo with SDPT and evaluate base + prompts.
#   DEMO=gdino scripts/demo.sh   runs the tiny Grounding DINO demo instead.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/setup_env.sh
py="${VENV:-$repo/.venv}/bin/python"
export PYTHONWARNINGS=ignore
demo="${DEMO:-glip}"
config="configs/demo/sdpt_${demo}_tiny_demo.py"
work_dir="work_dirs/sdpt_${demo}_tiny_demo"
"$py" tools/make_demo_assets.py
"$py" tools/train.py "$config" --work-dir "$work_dir"
"$py" tools/test.py "$config" "$work_dir/iter_40.pth" \
    --work-dir "$work_dir/test" --out "$work_dir/test/predictions.pkl"
echo "demo done: logs, prompt checkpoints and predictions in $work_dir"
