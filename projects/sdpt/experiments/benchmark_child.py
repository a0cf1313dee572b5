"""A measurement's child process: ``python -m
projects.sdpt.experiments.benchmark_child --child SPEC`` runs one JSON spec
of the speed benchmark (``speed.run_child``) or of the bank benchmark
(``bank_speed.run_bank_child``, when the spec has a ``bank_mode``) and prints
its result line."""
import argparse
import json

from .bank_speed import run_bank_child
from .measurement import RESULT_PREFIX, NothingTrainsError
from .speed import run_child


def child_main(argv=None):
    """Entry point of a child: run the JSON spec, print the result line."""
    parser = argparse.ArgumentParser(description='one benchmark child')
    parser.add_argument('--child', required=True, help='JSON spec')
    spec = json.loads(parser.parse_args(argv).child)
    try:
        if spec.get('bank_mode'):
            result = run_bank_child(spec)
        else:
            result = run_child(spec)
    except NothingTrainsError as err:
        raise SystemExit(str(err)) from None
    print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == '__main__':
    child_main()
