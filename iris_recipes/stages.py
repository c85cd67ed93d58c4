"""The stages of a run, in order: one table, and the one place that records a stage's status in run.json.

Each stage is a function `run(ctx, facts)` that does its work on the run directory and puts what it learned into
`facts` as it goes (so a failed stage still records how far it got); `prepare(ctx)`, where a stage has one, checks
its inputs before the stage is marked running, so a setup problem is not recorded as a failed stage. `run`
(`pipeline.py`) walks the table; the `export`, `eval` and `card` commands run one entry of it on a finished run.

A stage `needs` the stages whose output it reads. When a stage is run again, every stage done that depends on it,
directly or through another, is marked stale in run.json; a stage, `push` and the Space refuse to read a stale
stage's output and say what to rerun (`run --resume` reruns every stale stage, in order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from iris_recipes.errors import IrisError
from iris_recipes.rundir import STALE, RunDir, now_iso


def _print(message: str) -> None:
    print(message)


@dataclass
class StageContext:
    """What the stages share. The pipeline fills all of it; a single stage run on a run directory only `run`, `say`
    and that stage's own options."""

    run: RunDir
    say: Callable[[str], None] = _print  # the stage's summary lines
    recipe: Any = None  # the loaded Recipe (pipeline)
    recipe_data: dict = field(default_factory=dict)  # its resolved data (portable paths)
    base: str = ""  # the base model's local directory
    spec: Any = None  # train.launch.LaunchSpec
    console: Any = None  # rich Console: training's live progress
    verbose: bool = False
    checker: Any = None  # train.validator.Validator started ahead of the train stage
    # export
    quants: list[str] | None = None  # None: the recipe's export.quantize
    threads: int | None = None
    require_chat_stop: bool | None = None
    export_log: Callable[[str], None] | None = None
    export_settings: Any = None
    # eval
    evaluate: bool = True  # run the eval stage (`run --no-eval` turns it off)
    # card
    repo_id: str | None = None  # the Hub repo the card's usage snippet names (push --repo), else the recipe's
    eval_plan: Any = None
    eval_log: Callable[[str], None] | None = None
    result: Any = None  # what the last stage produced (data: its report; train: the metrics summary; merge: the
    # merged model's facts; export: the GGUF entries; eval: eval.json's content; card: the card's path)


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[StageContext, dict], Any]
    needs: tuple[str, ...] = ()  # earlier stages whose output this one reads: running one again makes it stale
    prepare: Callable[[StageContext], None] | None = None
    when: Callable[[StageContext], bool] = lambda ctx: True  # false: the pipeline skips it
    summary: Callable[[StageContext], str] | None = None  # the pipeline's line once it is done
    command: str | None = None  # `iris-recipes COMMAND RUN` runs it alone on a run


# -- the stages --------------------------------------------------------------------------------------------------
def _data(ctx: StageContext, facts: dict) -> None:
    from iris_recipes.data import prepare
    from iris_recipes.data.tokens import token_counter

    report = prepare(ctx.recipe, ctx.run.file("data"), count_tokens=token_counter(ctx.base))
    facts.update(train_rows=report["train"], val_rows=report["val"])
    ctx.result = report


def _train(ctx: StageContext, facts: dict) -> None:
    from iris_recipes.train.stage import train_stage

    train_stage(ctx, facts)


def _train_summary(ctx: StageContext) -> str:
    from iris_recipes.train.stage import summary_line

    return summary_line(ctx.result)


def _merge(ctx: StageContext, facts: dict) -> None:
    from iris_recipes import chat_families
    from iris_recipes.lora_merge import merge
    from iris_recipes.recipe.view import view
    from iris_recipes.train import config as axconfig

    method = view(ctx.recipe_data).method
    weights = ctx.run.file(axconfig.CHECKPOINTS) if method == "full" else ctx.run.file("adapter")
    result = merge(
        base_model=ctx.base,
        weights_dir=weights,
        out=ctx.run.file("merged"),
        method=method,
        eot_tokens=chat_families.end_of_turn(ctx.recipe_data["chat_template"]),
    )
    facts.update(result)
    ctx.run.set_artifact("merged", {"dir": "merged", **result})
    ctx.result = result


def _prepare_export(ctx: StageContext) -> None:
    from iris_recipes.export.stage import export_settings

    ctx.export_settings = export_settings(ctx.run, ctx.quants)


def _export(ctx: StageContext, facts: dict) -> None:
    from iris_recipes.export.stage import export_gguf

    kwargs = {"log": ctx.export_log} if ctx.export_log else {}
    ctx.result = export_gguf(
        ctx.run,
        ctx.export_settings,
        facts,
        require_chat_stop=ctx.require_chat_stop,
        threads=ctx.threads,
        **kwargs,
    )


def _prepare_eval(ctx: StageContext) -> None:
    from iris_recipes.evaluate import plan

    if ctx.eval_plan is None:
        ctx.eval_plan = plan(ctx.run.path)


def _eval(ctx: StageContext, facts: dict) -> None:
    from iris_recipes.evaluate.runner import evaluate_into

    ctx.result = evaluate_into(ctx.eval_plan, facts, ctx.eval_log or ctx.say)


def _card(ctx: StageContext, facts: dict) -> None:
    from iris_recipes.card import write_card

    ctx.result = write_card(ctx.run, repo_id=ctx.repo_id)
    facts["file"] = str(ctx.result.relative_to(ctx.run.path))


STAGES: tuple[Stage, ...] = (
    Stage(
        "data",
        _data,
        summary=lambda ctx: (
            f"data: {ctx.result['train']} training rows, {ctx.result['val']} validation rows -> {ctx.run.file('data')}"
        ),
    ),
    Stage("train", _train, needs=("data",), summary=_train_summary),
    Stage(
        "merge",
        _merge,
        needs=("train",),
        summary=lambda ctx: (
            f"merge: {ctx.run.file('merged')} ({ctx.result['dtype']}, eos {ctx.result['eos_token_id']})"
        ),
    ),
    Stage(
        "export",
        _export,
        needs=("merge",),
        prepare=_prepare_export,
        summary=lambda ctx: f"export: {ctx.run.file('gguf')}",
        command="export",
    ),
    Stage(  # base vs fine-tuned, through the exported GGUFs, on the held-out rows
        "eval",
        _eval,
        needs=("data", "merge", "export"),
        prepare=_prepare_eval,
        when=lambda ctx: ctx.evaluate and bool(ctx.run.artifact("gguf")),
        summary=lambda ctx: f"eval: {ctx.run.file('eval.json')}",
        command="eval",
    ),
    Stage(  # the data report, the training curve, the GGUFs and the evaluation
        "card",
        _card,
        needs=("data", "train", "export", "eval"),
        summary=lambda ctx: f"card: {ctx.run.file('README.md')}",
        command="card",
    ),
)
NAMES = tuple(stage.name for stage in STAGES)
_BY_NAME = {stage.name: stage for stage in STAGES}


# Commands that read a finished run without being one of its stages, and the stages whose output they read.
READERS: dict[str, tuple[str, ...]] = {
    "push": ("export", "eval", "card"),  # the GGUFs, the base model's GGUF that eval built, the card
    "space": ("export", "eval"),  # the GGUF it serves, and the base model's GGUF for "compare with base"
}


# -- what depends on what ----------------------------------------------------------------------------------------
def dependants(name: str) -> list[str]:
    """The stages that read `name`'s output, directly or through another stage, in table order."""
    found = {name}
    for stage in STAGES:  # a stage needs only earlier ones, so one pass in order finds every dependant
        if found.intersection(stage.needs):
            found.add(stage.name)
    return [stage.name for stage in STAGES if stage.name in found and stage.name != name]


def inputs(needs: tuple[str, ...]) -> list[str]:
    """The stages `needs` names and every stage they read in turn, in table order."""
    found = set(needs)
    for stage in reversed(STAGES):
        if stage.name in found:
            found.update(stage.needs)
    return [stage.name for stage in STAGES if stage.name in found]


def stale(run: RunDir) -> list[str]:
    """The stages of `run` marked stale, in table order."""
    recorded = run.read().get("stages") or {}
    return [stage.name for stage in STAGES if (recorded.get(stage.name) or {}).get("status") == STALE]


def rerun_command(run: RunDir, names: list[str]) -> str:
    """The command line that reruns the stages `names` (in table order) on `run`."""
    if not all(_BY_NAME[name].command for name in names):
        return f"iris-recipes run --resume {run.path}"
    return " && ".join(f"iris-recipes {_BY_NAME[name].command} {run.path}" for name in names)


def stale_problem(run: RunDir, reader: str) -> str | None:
    """Why `reader` (a stage, or one of READERS) must not read `run` now: a stage whose output it reads is stale.
    The message names the stale stages, why they are stale and what to rerun; None when everything is fresh."""
    needs = _BY_NAME[reader].needs if reader in _BY_NAME else READERS[reader]
    recorded = run.read().get("stages") or {}
    bad = [name for name in inputs(needs) if (recorded.get(name) or {}).get("status") == STALE]
    if not bad:
        return None
    because = [name for name in NAMES if name in {recorded[b].get("stale_because") for b in bad}]
    why = f" ({' and '.join(because)} ran again after {'it' if len(bad) == 1 else 'them'})" if because else ""
    is_stage = reader in _BY_NAME
    who = f"the {reader} stage" if is_stage else f"iris-recipes {reader}"
    return (
        f"{run.path}: {who} reads the output of {', '.join(bad)}, which {'is' if len(bad) == 1 else 'are'} "
        f"stale{why}. Rerun: {rerun_command(run, [*bad, reader] if is_stage else bad)}"
    )


def check_fresh(run: RunDir, reader: str) -> None:
    """IrisError (exit 2) when `reader` would read a stale stage's output of `run`."""
    problem = stale_problem(run, reader)
    if problem:
        raise IrisError(problem)


def _mark_dependants_stale(run: RunDir, name: str) -> list[str]:
    """After `name` ran: every done stage that reads its output, directly or not, is stale now."""
    meta = run.read()
    recorded = meta.get("stages") or {}
    marked = []
    for dependant in dependants(name):
        info = recorded.get(dependant)
        if info and info.get("status") == "done":
            info.update(status=STALE, stale_because=name, stale_since=now_iso())
            marked.append(dependant)
    if marked:
        run.write(meta)
    return marked


# -- running stages ----------------------------------------------------------------------------------------------
def run_stage(name: str, ctx: StageContext) -> Any:
    """Run one stage on `ctx.run` and record it in run.json (running, then done or failed, with its facts); a stage
    refuses stale inputs, and once done it makes the stages that read its output stale."""
    stage = _BY_NAME[name]
    ctx.result = None
    check_fresh(ctx.run, name)
    if stage.prepare is not None:
        stage.prepare(ctx)
    with ctx.run.stage(name) as facts:
        stage.run(ctx, facts)
    _mark_dependants_stale(ctx.run, name)
    return ctx.result


def run_alone(name: str, ctx: StageContext) -> Any:
    """One stage on a run outside `run` (the export, eval and card commands, sweeps). A stage publishes its output
    only once it has succeeded, so a failure here leaves a finished run finished; inside `run` it fails the run."""
    status = ctx.run.read().get("status")
    try:
        return run_stage(name, ctx)
    except BaseException:
        if status == "done":
            ctx.run.update(status=status)
        raise


def export_run(
    run: RunDir,
    quants: list[str] | None = None,
    *,
    require_chat_stop: bool | None = None,
    threads: int | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """`iris-recipes export RUN`: export, check and record the run's GGUFs; returns `artifacts["gguf"]`.

    quants: quantized types beside F16 (default: the recipe's export.quantize). require_chat_stop: whether the
    chat check demands the model stop on its own (default: yes, except for random-weight test models). log: where
    the stage's own lines go (llama.cpp's output goes to RUN/export.log).
    """
    if threads is not None and threads < 1:
        raise IrisError(f"export: --threads {threads}: give 1 or more, or leave it out to use every CPU it may use.")
    ctx = StageContext(run, quants=quants, threads=threads, require_chat_stop=require_chat_stop, export_log=log)
    return run_alone("export", ctx)


def evaluate_run(plan: Any, log: Callable[[str], None] = print) -> dict:
    """`iris-recipes eval RUN` and sweeps: the eval stage on a checked plan (evaluate.plan), then the card stage
    (the card shows the evaluation; a card that cannot be written is reported, the evaluation stands), then the
    evaluation into the run's tracked runs. Returns eval.json's content."""
    from iris_recipes.evaluate.runner import log_tracking

    result = run_alone("eval", StageContext(plan.run, eval_plan=plan, eval_log=log))
    try:
        run_alone("card", StageContext(plan.run))
    except IrisError as exc:
        log(f"the model card was not rewritten: {exc}")
    log_tracking(plan.run, result, log)
    return result
