"""The noise study's table: the same transfer-suite runs made under several
numerics (and schedules), each in its own work dir; per method, the test
AP's spread over seeds beside its spread under perturbed arithmetic.

    python tools/noise_report.py WORK_DIR [WORK_DIR ...] --out docs/noise

Each WORK_DIR is a ``tools/transfer_benchmark.py --work-dir`` of one
``--numerics`` / ``--schedule``. Writes OUT/noise.md and OUT/noise.csv.
See projects/sdpt/experiments/noise.py.
"""
import argparse
import sys

import _bootstrap  # noqa: F401

from projects.sdpt.experiments.noise import write_noise_report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='+')
    parser.add_argument('--out', default='docs/noise')
    args = parser.parse_args(argv)
    try:
        print(write_noise_report(args.work_dirs, args.out))
    except ValueError as err:
        raise SystemExit(f'error: {err}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
