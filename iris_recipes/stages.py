"""The stages of a run, in order: one table, and the one place that records a stage's status in run.json.

Each stage is a function `run(ctx, facts)` that does its work on the run directory and puts what it learned into
`facts` as it goes (so a failed stage still records how far it got); `prepare(ctx)`, where a stage has one, checks
its inputs before the stage is marked running, so a setup problem is not recorded as a failed stage. `run`
(`pipeline.py`) walks the table; the `export`, `eval` and `card` commands run one entry of it on a finished run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from iris_recipes import library_log
from iris_recipes.rundir import RunDir


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
    eval_plan: Any = None
    eval_log: Callable[[str], None] | None = None
    result: Any = None  # what the last stage produced (data: its report; train: the metrics summary; merge: the
    # merged model's facts; export: the GGUF entries; eval: eval.json's content; card: the card's path)


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[StageContext, dict], Any]
    needs: tuple[str, ...] = ()  # stages whose output this one reads
    prepare: Callable[[StageContext], None] | None = None
    when: Callable[[StageContext], bool] = lambda ctx: True  # false: the pipeline skips it
    summary: Callable[[StageContext], str] | None = None  # the pipeline's line once it is done


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
        eot_tokens=axconfig.EOT_TOKENS.get(ctx.recipe_data["chat_template"], []),
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

    ctx.result = write_card(ctx.run)
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
    ),
    Stage(  # base vs fine-tuned, through the exported GGUFs
        "eval",
        _eval,
        needs=("export",),
        prepare=_prepare_eval,
        when=lambda ctx: ctx.evaluate and bool(ctx.run.artifact("gguf")),
        summary=lambda ctx: f"eval: {ctx.run.file('eval.json')}",
    ),
    Stage("card", _card, needs=("train",), summary=lambda ctx: f"card: {ctx.run.file('README.md')}"),
)
NAMES = tuple(stage.name for stage in STAGES)
_BY_NAME = {stage.name: stage for stage in STAGES}


def run_stage(name: str, ctx: StageContext) -> Any:
    """Run one stage on `ctx.run` and record it in run.json (running, then done or failed, with its facts). What
    the libraries it runs print on their own goes to its log file, `<stage>.log` in the run directory."""
    stage = _BY_NAME[name]
    ctx.result = None
    if stage.prepare is not None:
        stage.prepare(ctx)
    with ctx.run.stage(name) as facts, library_log.into(ctx.run.file(f"{name}.log")):
        stage.run(ctx, facts)
    return ctx.result
