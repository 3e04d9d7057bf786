"""Train Lin et al. cases one after another (finished or locked ones skipped, then waited for).

    python experiments/lin_train.py --preset cpu --data ROOT --cases ours a

The helper process behind ``--jobs`` of the Lin figure scripts
(``experiments.scheduler.ensure_cases(jobs > 1)``); also usable by hand to train cases
ahead of the figures. Runs go to ``RUNS/lin/PRESET/CASE`` (default ``runs/``).
"""
from __future__ import annotations

from common.cli import Parser, add_verbose
from experiments.lin_common import ensure_data, runs_dir, with_seed
from experiments.presets import LIN_CASES, LIN_PRESETS
from experiments.scheduler import ensure_cases


def build_parser() -> Parser:
    p = Parser(prog="python experiments/lin_train.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=LIN_PRESETS, required=True)
    p.add_argument("--data", required=True, help="Lin et al. FITS root")
    p.add_argument("--runs", help="runs root (default runs/)")
    p.add_argument("--cases", nargs="+", choices=LIN_CASES, required=True)
    p.add_argument("--train-seed", type=int, default=0, help="training seed (default 0)")
    add_verbose(p)
    return p


def main(argv=None) -> int:
    from common.cli import quiet_tensorflow
    from common.errors import run_cli
    args = build_parser().parse_args(argv)
    args.preset = with_seed(args.preset, args.train_seed)
    quiet_tensorflow(args.verbose)

    def run():
        root = ensure_data(args.preset, args.data, progress=False)  # given: must exist
        runs = ensure_cases(args.cases, args.preset, root, args.runs, progress=False)
        print(f"wrote the runs of case(s) {', '.join(runs)} in "
              f"{runs_dir(args.preset, args.runs)}")
    return run_cli(run)


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
