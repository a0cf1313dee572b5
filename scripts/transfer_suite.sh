#!/usr/bin/env bash
# The transfer suite under the current protocol, the headline methods on both
# detectors, group by group in the order its results are wanted; after each
# group the whole suite's report (finished cells only) and the group's finished
# cells again with ATen's vectorisation off (the perturbation check of its
# verdicts). Finished runs are skipped, so the same command continues from the
# records committed in docs/transfer/ (and docs/noise/runs/suite_aten-default/)
# on any machine; commit them as they come.
#   bash scripts/transfer_suite.sh            everything (about 50 h on 2 cores)
#   WORKERS=4 bash scripts/transfer_suite.sh  on more cores (one thread per run)
# Progress: work_dirs/transfer_v2/suite.log; the report: docs/transfer/transfer.md;
# the check: python tools/noise_report.py docs/transfer \
#     docs/noise/runs/suite_aten-default --out docs/noise/suite
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
py="${VENV:-$repo/.venv}/bin/python"
export PYTHONWARNINGS=ignore
workers="${WORKERS:-2}"
methods="zero_shot sdpt sdpt_reference text language_prompt lora bitfit linear_probe
         full_ft full_ft_mmdet class_features"
rerun_methods="sdpt sdpt_reference text language_prompt lora full_ft full_ft_mmdet
               class_features bitfit linear_probe"
suite=(--workers "$workers" --work-dir work_dirs/transfer_v2 --results-dir docs/transfer)
mkdir -p work_dirs/transfer_v2
log=work_dirs/transfer_v2/suite.log

note() { echo "$(date '+%F %T') $*" | tee -a "$log"; }

group() {  # one group of cells, then the whole suite's report
  note "start: $*"
  # shellcheck disable=SC2086
  "$py" tools/transfer_benchmark.py "$@" --methods $methods "${suite[@]}" >> "$log" 2>&1
  note "end (exit $?): $*"
  # shellcheck disable=SC2086
  "$py" tools/transfer_benchmark.py --report-only --detectors gdino glip --shots 1 10 \
      --methods $methods "${suite[@]}" 2>&1 | tail -n 1 | tee -a "$log"
}

perturbed() {  # the group's finished cells again, ATen's vectorisation off
  note "start, aten-default: $*"
  # shellcheck disable=SC2086
  "$py" tools/transfer_benchmark.py --lr-from docs/transfer "$@" --methods $rerun_methods \
      --extra-seeds --numerics aten-default --workers "$workers" \
      --work-dir work_dirs/suite_aten-default \
      --results-dir docs/noise/runs/suite_aten-default >> "$log" 2>&1
  note "end (exit $?), aten-default: $*"
}

# the headline cell (Grounding DINO realignment k=10) last: its runs are recorded,
# and its perturbation check was made apart (docs/noise.md)
for cells in "--detectors glip --shifts realignment --shots 10" \
             "--detectors gdino --shifts vocabulary --shots 10" \
             "--detectors gdino --shifts composition appearance --shots 10" \
             "--detectors glip --shifts vocabulary composition appearance --shots 10" \
             "--detectors gdino glip --shots 1" \
             "--detectors gdino --shifts realignment --shots 10"; do
  # shellcheck disable=SC2086
  group $cells
  # shellcheck disable=SC2086
  perturbed $cells
done
