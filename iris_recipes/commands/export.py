"""`iris-recipes export RUN [--quantize q4_k_m,q8_0]`: (re)export a run's merged model to checked GGUF files."""

from __future__ import annotations

from pathlib import Path

from iris_recipes.commands.common import add_command
from iris_recipes.errors import IrisError


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "export",
        help="export a run's merged model to GGUF (F16 + quantized) and check every file, without retraining",
        example="iris-recipes export runs/smollm2-demo/20250101-120000 --quantize q4_k_m,q8_0",
        description=(
            "Convert RUN/merged/ with llama.cpp's converter to RUN/gguf/<recipe>-f16.gguf, quantize it, "
            "check each file (template and special tokens, top-1 agreement with the merged model, a short "
            "chat) and record sizes, sha256, agreement and decode speed in run.json. Files appear under "
            "their final names only once they have passed. The run's eval and card become stale (run.json) "
            "until they are run again. `--fetch-converter` installs llama.cpp's converter into the cache "
            "(once per machine)."
        ),
    )
    p.add_argument(
        "run",
        metavar="RUN",
        nargs="?",
        help="run directory (runs/<recipe>/<run-id>), or a recipe name for its newest run",
    )
    p.add_argument(
        "--quantize",
        metavar="TYPES",
        default=None,
        help="comma-separated quantized types instead of the recipe's export.quantize "
        "(q4_k_m,q5_k_m,q8_0,...; F16 is always written; 'none' for F16 only)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for quantizing and the GGUF checks (default: the CPUs this process may use)",
    )
    p.add_argument(
        "--fetch-converter",
        action="store_true",
        help="install llama.cpp's converter (from the llama-cpp-python sdist) and exit unless RUN is given",
    )
    p.add_argument(
        "--sdist",
        type=Path,
        default=None,
        help="with --fetch-converter: a local llama_cpp_python sdist instead of downloading it",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    if args.fetch_converter:
        from iris_recipes.export.converter import fetch_converter

        print(f"converter: {fetch_converter(args.sdist, force=args.sdist is not None)}")
        if not args.run:
            return 0
    if not args.run:
        raise IrisError("export: give a RUN directory (runs/<recipe>/<run-id>) or --fetch-converter.")
    from iris_recipes.locate import NEWEST, find_run
    from iris_recipes.stages import export_run, rerun_command, stale

    quants = None
    if args.quantize is not None:
        quants = (
            [] if args.quantize.strip().lower() in ("", "none") else [q for q in args.quantize.split(",") if q.strip()]
        )
    run_dir = find_run(args.run, NEWEST)
    entries = export_run(run_dir, quants, threads=args.threads)
    width = max(len(q) for q in entries)
    for quant, e in entries.items():
        print(
            f"{quant:<{width}}  {e['bytes'] / 2**20:8.1f} MiB  top1 {e['top1_agreement']:.3f}  "
            f"{e['decode_tok_s']:7.1f} tok/s  {run_dir.file(e['file'])}"
        )
    outdated = stale(run_dir)
    if outdated:
        print(
            f"stale now (made from the previous export): {', '.join(outdated)}; rerun: "
            f"{rerun_command(run_dir, outdated)}"
        )
    return 0
