r"""The noise study's table: the same transfer-suite runs made under several
numerics (and schedules, or on several CPU models), each in its own results
folder; per method, the test AP's spread over seeds beside its spread under
perturbed arithmetic, and whether SDPT's paired verdicts survive it.

    python tools/noise_report.py RESULTS_DIR [RESULTS_DIR ...] \
        --out docs/noise [--seeds 3 30 300]
    python tools/noise_report.py --from-csv docs/noise/headline/noise.csv \
        --out docs/noise/headline

Each RESULTS_DIR is a ``tools/transfer_benchmark.py --results-dir`` (or
``--work-dir``) of one ``--numerics`` / ``--schedule``; pinned runs made on
another CPU model than the first pinned folder's count as a mode of their
own. Writes OUT/noise.md, OUT/noise.json and OUT/noise.csv. The CSV lists
every run the report compared: ``--from-csv`` rebuilds a report from it
where the runs' records are gone. See projects/sdpt/experiments/noise.py.
"""
import argparse
import sys

import _bootstrap  # noqa: F401

from projects.sdpt.experiments.noise import (
    noise_rows,
    noise_rows_from_csv,
    write_noise_report,
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='*', metavar='RESULTS_DIR')
    parser.add_argument('--from-csv', metavar='CSV',
                        help="a report's noise.csv: the report of its runs "
                        '(instead of RESULTS_DIRs)')
    parser.add_argument('--out', default='docs/noise')
    parser.add_argument('--seeds', nargs='+', type=int, default=None,
                        help='only the runs of these seeds (default: all), '
                        'e.g. so that every schedule has the same seeds')
    args = parser.parse_args(argv)
    if bool(args.work_dirs) == bool(args.from_csv):
        parser.error('give RESULTS_DIRs or --from-csv, not both or neither')
    try:
        if args.from_csv:
            source = args.from_csv
            rows = noise_rows_from_csv(args.from_csv, args.seeds)
        else:
            source = ', '.join(args.work_dirs)
            rows = noise_rows(args.work_dirs, args.seeds)
        if not rows:
            raise ValueError(f'no finished tuned run in {source}')
        print(write_noise_report(rows, args.out))
    except ValueError as err:
        raise SystemExit(f'error: {err}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
