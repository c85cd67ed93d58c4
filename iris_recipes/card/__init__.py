"""The model card stage: `RUN/README.md` (Hugging Face model card) and `RUN/loss.png`.

    write_card(run, repo_id=None) -> Path     build and write the card of a run (the pipeline's entry point)
    upload_plan(run, repo_id=None, private=None) -> UploadPlan   what `iris-recipes push` would upload, and where
    push(plan) -> str                         upload a plan with huggingface_hub; returns the repo URL

Nothing heavy is imported here: matplotlib and huggingface_hub load inside the functions that use them.
"""

from iris_recipes.card.card import build_card, write_card
from iris_recipes.card.facts import CardFacts, gather
from iris_recipes.card.push import UploadPlan, push, upload_plan

__all__ = ["CardFacts", "UploadPlan", "build_card", "gather", "push", "upload_plan", "write_card"]
