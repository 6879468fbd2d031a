"""Run photodrag commands against hostile inputs in one process with a hard memory ceiling.

    python tests/probe.py COMMANDS.json [--headroom-gb 2] > RESULTS.jsonl

COMMANDS.json is a list of [name, [arg, ...]]. After importing everything (torch alone maps
a few GB of address space), the process caps its own address space at what it has plus
`--headroom-gb`, so an input that makes photodrag allocate gigabytes fails here instead of
swapping the machine. For each command one JSON line: exit code, stdout+stderr, seconds,
growth of the peak resident memory, and the Python exception if one escaped the CLI.
"""

import argparse
import json
import resource
import sys
import time
import warnings


def vm_size_bytes() -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmSize:'):
                return int(line.split()[1]) * 1024
    raise RuntimeError('no VmSize in /proc/self/status')


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('commands')
    parser.add_argument('--headroom-gb', type=float, default=2.0)
    args = parser.parse_args()
    with open(args.commands) as f:
        commands = json.load(f)

    from click.testing import CliRunner
    import torch  # noqa: F401  (imported before the cap, as the CLI would import it anyway)
    import photodrag.checkpoints, photodrag.alignment, photodrag.pipeline  # noqa: F401,E401
    from photodrag.cli import main as cli
    warnings.simplefilter('ignore')
    CliRunner().invoke(cli, ['--help'])             # lazy imports of the CLI happen before the cap
    limit = vm_size_bytes() + int(args.headroom_gb * 2 ** 30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for name, argv in commands:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        result = CliRunner().invoke(cli, argv)
        seconds = time.perf_counter() - t
        escaped = result.exception if not isinstance(result.exception, SystemExit) else None
        print(json.dumps({
            'name': name, 'exit_code': result.exit_code, 'output': result.output, 'seconds': seconds,
            'peak_growth_mb': (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024,
            'exception': None if escaped is None else f'{type(escaped).__name__}: {str(escaped)[:300]}',
        }), flush=True)


if __name__ == '__main__':
    sys.exit(main())
