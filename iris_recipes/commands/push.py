"""`iris-recipes push RUN`: upload a run's GGUF files, model card and loss curve to the Hugging Face Hub."""

from __future__ import annotations

from iris_recipes.commands.common import add_command


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "push",
        help="upload a run's GGUFs, README.md and loss.png to its publish.repo_id",
        example="HF_TOKEN=hf_... iris-recipes push runs/smollm2-demo/20250101-120000 --repo me/smollm2-demo-GGUF",
    )
    p.add_argument("run", metavar="RUN", help="run directory (runs/<recipe>/<run-id>)")
    p.add_argument("--repo", metavar="OWNER/NAME", help="target model repo (default: the recipe's publish.repo_id)")
    p.add_argument(
        "--private",
        action="store_true",
        default=None,
        help="create the repo private (default: the recipe's publish.private)",
    )
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded, and where; upload nothing")
    p.set_defaults(func=run)


def run(args) -> int:
    from iris_recipes.card import push, upload_plan
    from iris_recipes.card.push import hub_token
    from iris_recipes.rundir import RunDir
    from iris_recipes.stages import StageContext, check_fresh, run_alone

    rundir = RunDir.open(args.run)
    check_fresh(rundir, "push")  # never publish GGUFs, evaluation and card that disagree
    plan = upload_plan(rundir, repo_id=args.repo, private=args.private)
    print(
        f"{'would upload' if args.dry_run else 'uploading'} to https://huggingface.co/{plan.repo_id}"
        f" ({'private' if plan.private else 'public'}), {plan.total_bytes / 1e6:,.1f} MB:"
    )
    for src, dest in plan.files:
        print(f"  {dest:<40} {src.stat().st_size / 1e6:>10,.1f} MB  {src}")
    if args.dry_run:
        return 0
    token = hub_token()  # fail before touching the card when the hub cannot be reached
    if args.repo:  # the card's usage snippet must name the repo it is published in
        run_alone("card", StageContext(rundir, repo_id=plan.repo_id))
    print(f"done: {push(plan, token)}")
    return 0
