"""Printing an eval.json as a terminal table (rich)."""

from __future__ import annotations

from pathlib import Path


def fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) >= 1000 else f"{value:.{digits}f}".rstrip("0").rstrip(".") or "0"
    return str(value)


def print_eval(result: dict, path: Path | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    base, tuned = result.get("base") or {}, result.get("tuned") or {}
    table = Table(title=f"base vs fine-tuned ({result.get('samples')} held-out rows)")
    for col in ("measure", "base", "fine-tuned", "noise (seed spread)"):
        table.add_column(col)
    for key in ("val_loss", "perplexity"):
        table.add_row(key, fmt(base.get(key)), fmt(tuned.get(key)), "")
    for name, value in (tuned.get("metrics") or {}).items():
        table.add_row(
            name, fmt((base.get("metrics") or {}).get(name)), fmt(value), fmt((result.get("noise") or {}).get(name))
        )
    console.print(table)
    general = result.get("forgetting")
    if general:
        g = Table(
            title=f"general prompts outside the task ({general['prompts']}, greedy, up to "
            f"{general['max_new_tokens']} tokens)"
        )
        for col in ("measure", "base", "fine-tuned"):
            g.add_column(col)
        b, t = general["base"], general["tuned"]
        g.add_row("stop on their own", f"{b['stopped']} of {b['replies']}", f"{t['stopped']} of {t['replies']}")
        g.add_row("replies that loop", f"{b['loops']} of {b['replies']}", f"{t['loops']} of {t['replies']}")
        g.add_row("median length (tokens)", fmt(b["median_tokens"]), fmt(t["median_tokens"]))
        g.add_row("agreement with the base reply", "", fmt(t.get("agreement")))
        console.print(g)
        style = "green" if general["kept"] else "bold red"
        console.print(f"[{style}]general behaviour: {general['verdict']}[/{style}]")
    speed = Table(title="GGUF speed on this CPU")
    for col in ("file", "decode tok/s", "time to first token (s)", "latency (s)"):
        speed.add_column(col)
    for quant, v in (result.get("gguf") or {}).items():
        speed.add_row(quant, fmt(v.get("decode_tok_s"), 3), fmt(v.get("ttft_s"), 3), fmt(v.get("latency_s"), 3))
    console.print(speed)
    for g in result.get("generations") or []:
        if "seed" not in g:
            console.print(f"[bold]{g['prompt']}[/bold]\n  base:  {g['base']!r}\n  tuned: {g['tuned']!r}")
    if path:
        console.print(f"written: {path}")
