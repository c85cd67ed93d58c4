"""Training objectives: what the loss rewards. One entry per objective; `method` (lora, qlora, full) stays the
independent choice of which weights train.

`sft` (the default) trains on chat rows through Axolotl's supervised trainer. The preference objectives train through
Axolotl's `rl:` trainers (TRL underneath) on rows the data stage writes in TRL's conversational shapes: pairs (a
prompt, a chosen and a rejected answer) for DPO, ORPO and SimPO, unpaired answers labelled desirable or not for KTO.
A recipe selects one with `objective: NAME`; its settings live in the recipe's block of the same name, whose keys and
defaults the JSON Schema holds (a test keeps the two in step). The recipe schema's enum, the cross-field checks, the
Axolotl config, the launch plan's memory and the data stage's row-kind check all read this registry.

Pure Python: recipe validation imports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from iris_recipes.data.formats import CHAT, PREFERENCE, UNPAIRED

SFT = "sft"


@dataclass(frozen=True)
class Objective:
    name: str  # the recipe's `objective:` value and the name of its settings block
    rl: str | None  # Axolotl's `rl:` value; None for supervised fine-tuning
    rows: str  # the kind of row it trains on (data.formats.ROW_KINDS)
    reference: bool  # the loss compares the model with a frozen reference (the base model)
    full_copy: bool  # with method full, Axolotl 0.19 loads a second copy of the model as the reference
    summary: str  # one line for the launch plan and messages
    settings: dict[str, str] = field(default_factory=dict)  # settings-block key -> Axolotl config key

    @property
    def preference(self) -> bool:
        return self.rl is not None

    @property
    def sequences_per_row(self) -> int:
        """Sequences one training row puts through the model: a pair runs its chosen and rejected answers."""
        return 2 if self.rows == PREFERENCE else 1

    def axolotl_keys(self, block: dict) -> dict:
        """The Axolotl config keys of the recipe's settings block (defaults filled in)."""
        keys: dict = {"rl": self.rl} if self.rl else {}
        for key, ax_key in self.settings.items():
            if key in block:
                keys[ax_key] = [block[key]] if ax_key in LIST_KEYS else block[key]
        return keys


LIST_KEYS = {"dpo_loss_type"}  # Axolotl takes a list (several DPO losses may combine); a recipe names one

OBJECTIVES: dict[str, Objective] = {}


def register(objective: Objective) -> Objective:
    if objective.name in OBJECTIVES:
        raise ValueError(f"objective {objective.name!r} is registered twice")
    OBJECTIVES[objective.name] = objective
    return objective


register(Objective(SFT, rl=None, rows=CHAT, reference=False, full_copy=False, summary="supervised fine-tuning"))
register(
    Objective(
        "dpo",
        rl="dpo",
        rows=PREFERENCE,
        reference=True,
        full_copy=True,
        summary="DPO: raise the chosen answer's likelihood over the rejected one's, relative to the base model",
        settings={"beta": "rl_beta", "loss_type": "dpo_loss_type", "label_smoothing": "dpo_label_smoothing"},
    )
)
register(
    Objective(
        "orpo",
        rl="orpo",
        rows=PREFERENCE,
        reference=False,
        full_copy=False,
        summary="ORPO: supervised loss on the chosen answer plus an odds-ratio penalty on the rejected one; no "
        "reference model",
        settings={"alpha": "orpo_alpha"},
    )
)
register(
    Objective(
        "kto",
        rl="kto",
        rows=UNPAIRED,
        reference=True,
        full_copy=True,
        summary="KTO: answers labelled desirable or undesirable, each judged against the base model",
        settings={
            "beta": "rl_beta",
            "desirable_weight": "kto_desirable_weight",
            "undesirable_weight": "kto_undesirable_weight",
        },
    )
)
register(
    Objective(
        "simpo",
        rl="simpo",
        rows=PREFERENCE,
        reference=False,
        # SimPO needs no reference, but Axolotl 0.19 loads one for every rl: other than orpo when no adapter trains
        full_copy=True,
        summary="SimPO: length-normalized likelihood margin between chosen and rejected; no reference model",
        settings={"beta": "rl_beta", "gamma": "simpo_gamma", "nll_weight": "cpo_alpha"},
    )
)


def names() -> list[str]:
    return list(OBJECTIVES)


def get(name: str | None) -> Objective:
    """The objective a recipe names (sft when it names none)."""
    try:
        return OBJECTIVES[name or SFT]
    except KeyError:
        raise KeyError(f"unknown objective {name!r}; known: {', '.join(OBJECTIVES)}") from None


def of(recipe_data: dict) -> Objective:
    return get(recipe_data.get("objective"))


def describe(recipe_data: dict) -> str:
    """The recipe's objective and its settings in one phrase: "sft", "dpo (beta 0.1, loss_type sigmoid, ...)"."""
    objective = of(recipe_data)
    block = recipe_data.get(objective.name) or {}
    settings = ", ".join(f"{k} {block[k]}" for k in objective.settings if k in block)
    return f"{objective.name} ({settings})" if settings else objective.name


def row_kind_problem(objective: Objective, produces: str, source: str) -> str | None:
    """Why rows of kind `produces` (from `source`: "format NAME" or "dataset 'NAME' (format F)") cannot train
    `objective`, or None."""
    if produces == objective.rows:
        return None
    wanted = {
        CHAT: "chat rows (a conversation ending with the assistant's answer)",
        PREFERENCE: "preference pairs (a prompt with a chosen and a rejected answer)",
        UNPAIRED: "unpaired rows (a prompt with one answer labelled desirable or undesirable), not pairs",
    }[objective.rows]
    return f"objective {objective.name} trains on {wanted}, but {source} gives {produces} rows"
