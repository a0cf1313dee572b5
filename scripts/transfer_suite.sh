#!/usr/bin/env bash
# The transfer suite under the current protocol on both detectors, group by
# group in the order its results are wanted (the headline methods, then the
# rest of the zoo, then SDPT's ablations); after each
# group the whole suite's report (finished cells only) and the group's finished
# cells again with ATen's vectorisation off (the perturbation check of its
# verdicts). Finished runs are skipped, so the same command continues from the
# records committed in docs/transfer/ (and docs/noise/runs/suite_aten-default/)
# on any machine; commit them as they come.
#   bash scripts/transfer_suite.sh            everything (the headline methods
#                                             alone: about 50 h on 2 cores)
#   WORKERS=4 bash scripts/transfer_suite.sh  on more cores (one thread per run)
# Progress: work_dirs/transfer_v2/suite.log; the report: docs/transfer/transfer.md;
# the check's report: docs/noise/suite/noise.md; the documentation's generated
# tables are refreshed after each (tools/make_doc_tables.py).
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/setup_env.sh || exit 1
py="${VENV:-$repo/.venv}/bin/python"
export PYTHONWARNINGS=ignore
workers="${WORKERS:-2}"
headline="zero_shot sdpt sdpt_reference text language_prompt lora bitfit linear_probe
          full_ft full_ft_mmdet class_features"
zoo="dpt visual independent_dual maple fusion_adapter"
ablations="sdpt_k8 sdpt_k32 sdpt_k100 sdpt_first_layer sdpt_shared sdpt_normal_init
           sdpt_with_head head_only"
suite=(--workers "$workers" --work-dir work_dirs/transfer_v2 --results-dir docs/transfer)
mkdir -p work_dirs/transfer_v2
log=work_dirs/transfer_v2/suite.log

note() { echo "$(date '+%F %T') $*" | tee -a "$log"; }

group() {  # METHODS CELLS...: one group of cells, then the whole suite's report
  local methods; methods=$(echo $1); shift  # one line
  note "start: $methods: $*"
  # shellcheck disable=SC2086
  "$py" tools/transfer_benchmark.py "$@" --methods $methods "${suite[@]}" >> "$log" 2>&1
  note "end (exit $?): $*"
  # shellcheck disable=SC2086
  "$py" tools/transfer_benchmark.py --report-only --detectors gdino glip --shots 1 10 \
      --methods $headline $zoo $ablations "${suite[@]}" 2>&1 | tail -n 1 | tee -a "$log"
  "$py" tools/make_doc_tables.py >> "$log" 2>&1
}

perturbed() {  # METHODS CELLS...: the cells again, ATen's vectorisation off
  local methods; methods=$(echo ${1/zero_shot/}); shift  # one line
  note "start, aten-default: $methods: $*"
  # shellcheck disable=SC2086
  "$py" tools/transfer_benchmark.py --lr-from docs/transfer "$@" --methods $methods \
      --numerics aten-default --workers "$workers" \
      --work-dir work_dirs/suite_aten-default \
      --results-dir docs/noise/runs/suite_aten-default >> "$log" 2>&1
  note "end (exit $?), aten-default: $*"
  "$py" tools/noise_report.py docs/transfer docs/noise/runs/suite_aten-default \
      --out docs/noise/suite > /dev/null 2>> "$log"
  "$py" tools/make_doc_tables.py >> "$log" 2>&1
}

# the headline methods first, the headline cell (Grounding DINO realignment k=10,
# recorded already) last; then the rest of the zoo and SDPT's ablations
for cells in "--detectors glip --shifts realignment --shots 10" \
             "--detectors gdino --shifts vocabulary --shots 10" \
             "--detectors gdino --shifts composition appearance --shots 10" \
             "--detectors glip --shifts vocabulary composition appearance --shots 10" \
             "--detectors gdino glip --shots 1" \
             "--detectors gdino --shifts realignment --shots 10"; do
  # shellcheck disable=SC2086
  group "$headline" $cells
  # shellcheck disable=SC2086
  perturbed "$headline" $cells
done
# the ablations where the earlier protocol ran them (realignment; the head on
# vocabulary too) before the other two shifts
for run in "$zoo|" "$ablations|--shifts realignment vocabulary" \
           "$ablations|--shifts composition appearance"; do
  methods="${run%|*}"
  # shellcheck disable=SC2086
  group "$methods" --detectors gdino glip --shots 10 1 ${run#*|}
  # shellcheck disable=SC2086
  perturbed "$methods" --detectors gdino glip --shots 10 1 ${run#*|}
done
