"""``blt lm-eval RUN --tasks T[,T...]``: EleutherAI lm-evaluation-harness tasks on a trained run."""

from __future__ import annotations

import argparse

NAME = "lm-eval"
HELP = "run lm-evaluation-harness tasks on a trained run, export or checkpoint (optional extra: eval)"
DESCRIPTION = (
    "Evaluate RUN (a run directory, its export/ directory or a checkpoints/step_* directory) on "
    "lm-evaluation-harness tasks: built-in ones, or local task YAMLs found under --include-path "
    "(dataset_path: json with data_files works offline; relative data_files are read from the "
    "current directory, as the datasets library resolves them). Prints lm-eval's results table, or "
    "one JSON object with --json. Needs the optional extra: pip install 'blt-lab[eval]'."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="RUN", help="run directory, export directory or checkpoint directory")
    parser.add_argument("--tasks", required=True, help="comma-separated task, group or tag names (glob patterns allowed)")
    parser.add_argument("--include-path", action="append", default=None, metavar="DIR",
                        help="directory of extra task YAMLs (repeatable)")
    parser.add_argument("--limit", type=float, default=None, metavar="N",
                        help="documents per task: a count, or a fraction below 1")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N", help="rows per forward pass (default 8)")
    parser.add_argument("--num-fewshot", type=int, default=None, metavar="K", help="few-shot examples (default: the task's)")
    parser.add_argument("--bootstrap-iters", type=int, default=100000, metavar="N",
                        help="bootstrap resamples for the stderr of metrics that need them (lm-eval's default 100000; 0 = none)")
    parser.add_argument("--speculative", type=int, default=None, metavar="K",
                        help="generation tasks: exact self-speculative decoding, drafting up to K bytes past each patch "
                             "boundary (greedy outputs unchanged)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def run(args: argparse.Namespace) -> int:
    import contextlib
    import json
    import sys
    from pathlib import Path

    from blt.core.errors import InputError, UnavailableError

    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if not names:
        raise InputError("--tasks needs at least one task name")
    limit = _limit(args.limit)
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.num_fewshot is not None and args.num_fewshot < 0:
        raise InputError(f"--num-fewshot must be >= 0, got {args.num_fewshot}")
    if args.speculative is not None and args.speculative < 1:
        raise InputError(f"--speculative must be >= 1, got {args.speculative}")
    if args.bootstrap_iters < 0:
        raise InputError(f"--bootstrap-iters must be >= 0, got {args.bootstrap_iters}")
    include = [Path(p) for p in args.include_path or []]
    for path in include:
        if not path.is_dir():
            raise InputError(f"--include-path {path}: not a directory")

    from blt.evaluation.lm_eval_adapter import BltLM  # one-line error when lm-eval is missing

    manager, names = task_manager(names, include)
    lm = BltLM(args.checkpoint, batch_size=args.batch_size, speculative=args.speculative)
    import lm_eval
    from lm_eval.utils import handle_non_serializable, make_table

    try:
        with contextlib.redirect_stdout(sys.stderr):  # lm-eval prints notes; stdout holds only the results
            results = lm_eval.simple_evaluate(model=lm, tasks=names, task_manager=manager, limit=limit,
                                              num_fewshot=args.num_fewshot, bootstrap_iters=args.bootstrap_iters,
                                              batch_size=args.batch_size, log_samples=False)
    except FileNotFoundError as exc:
        raise InputError(f"a task's data file is missing: {exc} (relative data_files in a task YAML are read "
                         "from the current directory)") from None
    except ConnectionError as exc:
        raise UnavailableError(f"a task's dataset could not be fetched: {exc}; offline, use local task YAMLs "
                               "(dataset_path: json with data_files) via --include-path") from None
    if results is None:  # only on non-zero ranks; blt lm-eval runs one process
        return 0
    if args.json:
        keys = ("results", "groups", "group_subtasks", "configs", "versions", "n-shot", "higher_is_better", "n-samples", "config")
        out = {k: results[k] for k in keys if k in results}
        sys.stdout.write(json.dumps(out, default=handle_non_serializable) + "\n")
        return 0
    sys.stdout.write(make_table(results) + "\n")
    if results.get("groups"):
        sys.stdout.write(make_table(results, "groups") + "\n")
    return 0


def task_manager(names: list[str], include: list) -> tuple[object, list[str]]:
    """An lm-eval ``TaskManager`` that knows every name in ``names`` and the names with glob
    patterns expanded, else a one-line InputError. Indexing lm-eval's thousands of built-in YAMLs
    takes seconds, so when ``--include-path`` alone holds every task that index is skipped
    (include paths take precedence anyway)."""
    from lm_eval.tasks import TaskManager

    from blt.core.errors import InputError

    if include:
        local = TaskManager(include_path=[str(p) for p in include], include_defaults=False)
        if not _missing(local, names):
            return local, _expand(local, names)
    manager = TaskManager(include_path=[str(p) for p in include] or None)
    missing = _missing(manager, names)
    if missing:
        import difflib

        hints = []
        for name in missing:
            close = difflib.get_close_matches(name, manager.all_tasks, n=3)
            hints.append(f"{name!r}" + (f" (did you mean {', '.join(map(repr, close))}?)" if close else ""))
        where = f" or under {', '.join(map(str, include))}" if include else "; local task YAMLs need --include-path DIR"
        raise InputError(f"unknown lm-eval task {', '.join(hints)}: not among lm-eval's tasks{where}")
    return manager, _expand(manager, names)


def _expand(manager: object, names: list[str]) -> list[str]:
    """``names`` with each glob pattern replaced by the names it matches (order kept, no repeats)."""
    out: list[str] = []
    for name in names:
        for match in [name] if name in manager.all_tasks else manager.match_tasks([name]):  # type: ignore[attr-defined]
            if match not in out:
                out.append(match)
    return out


def _missing(manager: object, names: list[str]) -> list[str]:
    """Names (or glob patterns) that match no task, group or tag of ``manager``."""
    out = []
    for name in names:
        matched = manager.match_tasks([name])  # type: ignore[attr-defined]
        if not matched or (name not in matched and not any(ch in name for ch in "*?[")):
            out.append(name)
    return out


def _limit(value: float | None) -> int | float | None:
    from blt.core.errors import InputError

    if value is None:
        return None
    if not value > 0:
        raise InputError(f"--limit must be > 0 (a count, or a fraction below 1), got {value:g}")
    if value >= 1:
        if value != int(value):
            raise InputError(f"--limit must be a whole number of documents or a fraction below 1, got {value:g}")
        return int(value)
    return value
