"""Load-test the prompt bank's page: one request at a time, then N clients
at once; every request answered, concurrent answers equal to the answers
alone, latency and throughput of both (projects/sdpt/serving/load_test.py).

    python tools/serve_load_test.py CONFIG --task NAME=PROMPT.pth ...
        --images IMG [IMG ...] [--base-weights BASE.pth]
        [--clients 8] [--rounds 4] [--out load.json] [SERVE OPTIONS]

It starts tools/serve.py (CONFIG, the tasks and the serve options after
--serve-args) on a free localhost port, sends each task every image, stops
the server and prints and writes (--out) the report. Exit status 1 when a
request failed or an answer differed. Needs requirements-serve.txt.
"""
import argparse
import json
import sys
import tempfile

import _bootstrap  # noqa: F401

from projects.sdpt.cli import import_optional, name_value_pairs
from projects.sdpt.utils.io import atomic_write_json

load_test = import_optional('projects.sdpt.serving.load_test',
                            'tools/serve_load_test.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--task', action='append', required=True,
                        metavar='NAME=CKPT')
    parser.add_argument('--images', nargs='+', required=True,
                        help='image files each task is sent')
    parser.add_argument('--base-weights')
    parser.add_argument('--clients', type=int, default=8)
    parser.add_argument('--rounds', type=int, default=4,
                        help='requests per client')
    parser.add_argument('--score-thr', type=float, default=0.3)
    parser.add_argument('--out', help='write the report (JSON) here')
    parser.add_argument('--serve-args', nargs=argparse.REMAINDER, default=[],
                        help='options for tools/serve.py (the rest of the '
                        'line)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    tasks = name_value_pairs(args.task, '--task')
    if args.clients < 1 or args.rounds < 1:
        raise SystemExit('--clients and --rounds must be at least 1')
    serve = [args.config] + [f'--task={t}' for t in args.task]
    if args.base_weights:
        serve += ['--base-weights', args.base_weights]
    serve += args.serve_args
    cases = [load_test.LoadCase(task, image) for image in args.images
             for task in tasks]
    log = tempfile.NamedTemporaryFile(prefix='serve_', suffix='.log',
                                      delete=False).name
    with load_test.ServerProcess(serve, log_path=log) as server:
        print(f'starting the server (log: {log})', flush=True)
        url = server.wait_ready()
        reports = load_test.run_load_test(
            url, cases, clients=args.clients, rounds=args.rounds,
            score_thr=args.score_thr,
            progress=lambda text: print(f'\r{text}   ', end='',
                                        file=sys.stderr, flush=True))
    print(file=sys.stderr)
    report = dict(config=args.config, tasks=sorted(tasks),
                  images=len(args.images), clients=args.clients,
                  rounds=args.rounds,
                  passes={k: v.to_dict() for k, v in reports.items()})
    alone, together = (report['passes'][k]
                       for k in ('one_at_a_time', 'concurrent'))
    if alone['throughput_rps']:
        report['throughput_ratio'] = round(
            together['throughput_rps'] / alone['throughput_rps'], 3)
    print(json.dumps(report, indent=1))
    if args.out:
        atomic_write_json(report, args.out)
    failed = any(p['errors'] or p['mismatches'] or
                 p['answered'] != p['requests']
                 for p in report['passes'].values())
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
