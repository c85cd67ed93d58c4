"""metrics.jsonl: one JSON object per trainer log event, written by the plugin's callback (rank 0).

Events: `train_begin` (world_size, backend, max_steps), `log` (step with loss, learning_rate, grad_norm,
tokens_total, tokens_trainable, on GPUs gpu_max_allocated_gib; or eval_loss), `save` (a checkpoint was written), `train_end`.
A resumed run first drops the events logged after its checkpoint, so every step appears once.
"""

from __future__ import annotations

import json
from pathlib import Path

from iris_recipes import fsutil
from iris_recipes.errors import IrisError


def read_metrics(path: str | Path, *, strict: bool = False) -> list[dict]:
    """Every record. A line that is not JSON is skipped (a kill mid-write tears the last one), or with `strict`
    an error naming it (a model card reports what was logged and must not guess)."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if not strict:
                continue
            raise IrisError(
                f"{path}:{number}: not valid JSON ({exc.msg}); each line must be one JSON object "
                'such as {"step": 1, "loss": 2.3}. Fix or delete the line.'
            ) from None
        if isinstance(record, dict):
            records.append(record)
    return records


def truncate_after(path: str | Path, step: int) -> int:
    """Drop the records of steps after `step` (they will be logged again on resume); returns how many."""
    records = read_metrics(path)
    kept = [r for r in records if int(r.get("step", 0)) <= step and r.get("event") != "train_end"]
    if Path(path).is_file():  # rewritten even when nothing is dropped: a torn last line goes too
        fsutil.write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
    return len(records) - len(kept)


def train_losses(records: list[dict]) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in records if r.get("event") == "log" and "loss" in r]


def eval_losses(records: list[dict]) -> list[tuple[int, float]]:
    return [(r["step"], r["eval_loss"]) for r in records if r.get("event") == "log" and "eval_loss" in r]


def summarize(records: list[dict]) -> dict:
    """Figures for run.json and the model card."""
    losses, evals = train_losses(records), eval_losses(records)
    begins = [r for r in records if r.get("event") == "train_begin"]
    ends = [r for r in records if r.get("event") == "train_end"]
    steps = [r for r in records if r.get("event") == "log" and "loss" in r]
    out: dict = {
        "steps": ends[-1]["step"] if ends else (losses[-1][0] if losses else 0),
        "max_steps": (ends or begins or [{}])[-1].get("max_steps"),
        "world_size": (begins or ends or [{}])[-1].get("world_size"),
        "backend": begins[-1].get("backend") if begins else None,
        "first_loss": losses[0][1] if losses else None,
        "final_loss": losses[-1][1] if losses else None,
        "final_eval_loss": evals[-1][1] if evals else None,
        "best_eval_loss": min(v for _, v in evals) if evals else None,
        "logged_steps": len(losses),
        "segments": len(begins),  # 1 + the number of resumes
    }
    # Throughput over the last uninterrupted segment, from its first to its last logged step.
    last_begin = max((i for i, r in enumerate(records) if r.get("event") == "train_begin"), default=-1)
    seg = [r for r in records[last_begin + 1 :] if r.get("event") == "log" and "loss" in r and "tokens_total" in r]
    if len(seg) >= 2 and seg[-1]["time"] > seg[0]["time"]:
        dt = seg[-1]["time"] - seg[0]["time"]
        out["tokens_per_second"] = round((seg[-1]["tokens_total"] - seg[0]["tokens_total"]) / dt, 2)
        out["trained_tokens_per_second"] = round(
            (seg[-1].get("tokens_trainable", 0) - seg[0].get("tokens_trainable", 0)) / dt, 2
        )
        out["seconds_per_step"] = round(dt / max(1, seg[-1]["step"] - seg[0]["step"]), 4)
    peaks = [r["gpu_max_allocated_gib"] for r in records if "gpu_max_allocated_gib" in r]
    if peaks:
        out["gpu_max_allocated_gib"] = max(peaks)
    if steps and "tokens_total" in steps[-1]:
        out["tokens_total"] = steps[-1]["tokens_total"]
        out["tokens_trainable"] = steps[-1].get("tokens_trainable")
    return out
