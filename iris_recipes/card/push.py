"""`iris-recipes push`: upload a run's GGUFs, model card and loss curve to a Hugging Face model repo.

The plan (what goes where) is computed apart from the upload so it can be shown (`--dry-run`) and tested offline.
The token comes from huggingface_hub (HF_TOKEN, or the `hf auth login` cache) and is never printed or written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from iris_recipes.card.card import CARD_FILE, PLOT_FILE, _ordered
from iris_recipes.errors import IrisError
from iris_recipes.hostinfo import hub_offline
from iris_recipes.rundir import RunDir, gguf_filename


@dataclass
class UploadPlan:
    repo_id: str
    private: bool
    files: list[tuple[Path, str]] = field(default_factory=list)  # (local file, path in the repo)
    commit_message: str = ""

    @property
    def paths_in_repo(self) -> list[str]:
        return [dest for _, dest in self.files]

    @property
    def total_bytes(self) -> int:
        return sum(src.stat().st_size for src, _ in self.files)


def upload_plan(run: RunDir, repo_id: str | None = None, private: bool | None = None) -> UploadPlan:
    """What `push` uploads: every GGUF of the run (at the repo root, named as the Space expects), the base model's
    F16 GGUF that eval built (`base-f16.gguf`, for the Space's comparison), README.md and loss.png.
    `repo_id`/`private` override the recipe's `publish` block."""
    recipe = run.recipe() if run.file("recipe.yaml").is_file() else None
    if recipe is None:
        raise IrisError(f"{run.file('recipe.yaml')}: missing; is {run.path} a run directory?")
    publish = recipe.get("publish") or {}
    repo = repo_id or publish.get("repo_id")
    if not repo:
        raise IrisError(
            f"{run.file('recipe.yaml')}: publish.repo_id is not set, so there is nowhere to push. "
            f"Add `publish: {{repo_id: YOUR-USER/{recipe.name}-GGUF}}` to recipes/{recipe.name}.yaml, "
            "or pass --repo YOUR-USER/NAME."
        )
    from iris_recipes.models import HUB_ID

    if not HUB_ID.match(repo):
        raise IrisError(
            f"--repo {repo!r}: not a Hugging Face repo id; give OWNER/NAME (letters, digits, '.', '_', '-')."
        )

    ggufs = run.artifact("gguf") or {}
    if not ggufs:
        raise IrisError(
            f"{run.meta_path}: no GGUF files recorded (artifacts.gguf); run `iris-recipes export {run.path}` first."
        )
    files: list[tuple[Path, str]] = []
    for quant, art in _ordered(ggufs):
        src = run.file(art.get("file", ""))
        if not art.get("file") or not src.is_file():
            raise IrisError(
                f"{run.meta_path}: artifacts.gguf.{quant}: file {src} is missing; re-run "
                f"`iris-recipes export {run.path}`."
            )
        files.append((src, gguf_filename(recipe.name, quant)))
        modelfile = run.file(art["modelfile"]) if art.get("modelfile") else None
        if modelfile is not None and modelfile.is_file():  # FROM ./<gguf>: both at the repo root
            files.append((modelfile, modelfile.name))
    from iris_recipes.space_variants import BASE_GGUF_FILE, base_gguf_of

    base = base_gguf_of(run)  # the hosted Space's "compare with base model" downloads it from this repo
    if base is not None:
        files.append((base, BASE_GGUF_FILE))
    card = run.file(CARD_FILE)
    if not card.is_file():
        raise IrisError(f"{card}: no model card yet; write it with `iris-recipes card {run.path}`.")
    files.append((card, CARD_FILE))
    if run.file(PLOT_FILE).is_file():
        files.append((run.file(PLOT_FILE), PLOT_FILE))
    run_id = run.read().get("run_id") or run.path.name
    return UploadPlan(
        repo_id=repo,
        private=bool(publish.get("private", False) if private is None else private),
        files=files,
        commit_message=f"{recipe.name}: GGUF files and model card of run {run_id}",
    )


def hub_token() -> str:
    """The user's Hugging Face token (HF_TOKEN or the login cache); IrisError when offline or there is none."""
    if hub_offline():
        raise IrisError(
            "HF_HUB_OFFLINE is set: pushing needs the Hugging Face Hub. Unset HF_HUB_OFFLINE and "
            "push again (nothing was uploaded)."
        )
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise IrisError(
            "no Hugging Face token: set HF_TOKEN in the environment (a write token from "
            "https://huggingface.co/settings/tokens) or run `hf auth login`, then push again."
        )
    return token


def push(plan: UploadPlan, token: str | None = None) -> str:
    """Create the repo if needed and upload the plan's files in one commit; returns the repo URL."""
    token = token or hub_token()
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(token=token)
    try:
        url = api.create_repo(plan.repo_id, repo_type="model", private=plan.private, exist_ok=True)
        api.create_commit(
            plan.repo_id,
            repo_type="model",
            commit_message=plan.commit_message,
            operations=[CommitOperationAdd(path_in_repo=dest, path_or_fileobj=str(src)) for src, dest in plan.files],
        )
    except Exception as exc:  # any transport/HTTP failure becomes one clear line (token scrubbed)
        detail = (str(exc).splitlines() or [""])[0].replace(token, "***")[:300]
        raise IrisError(
            f"push to https://huggingface.co/{plan.repo_id} failed ({type(exc).__name__}: {detail}). "
            "Check the network and that the token may write to this repo, then push again; the files go up "
            "in one commit, so the repo holds all of them or none."
        ) from None
    return str(url)
