"""The export stage: RUN/merged/ -> RUN/gguf/<recipe>-f16.gguf and <recipe>-<quant>.gguf, checked and recorded.

Files are built and checked in a private staging folder inside gguf/ and only then renamed onto their final
names, so a finished-looking GGUF has always passed its checks, and a failed or interrupted export leaves the
previous export of this run (if any) untouched. Only this run's gguf/ folder is ever written.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from iris_recipes.errors import IrisError
from iris_recipes.export import gguf_checks
from iris_recipes.export.converter import LLAMA_CPP_PYTHON_VERSION, find_converter
from iris_recipes.export.hf_to_gguf import (
    QUANT_TYPES,
    base_f16_gguf,
    check_merged,
    check_quants,
    convert_f16,
    convert_lora,
    ensure_space,
    estimate_bytes,
    fallbacks,
    quantize,
)
from iris_recipes.fsutil import sha256_file, write_text
from iris_recipes.hostinfo import cpu_count, cpu_description
from iris_recipes.rundir import RunDir, gguf_filename


def _recipe_settings(run: RunDir) -> tuple[str, list[str], float]:
    recipe = run.recipe()
    return (
        recipe.name,
        list(recipe.get("export.quantize")),
        float(recipe.get("export.min_top1_agreement")),
    )


def model_name(run: RunDir, recipe_name: str) -> str:
    """The GGUF's `general.name`: the variant and the model it was tuned from, e.g.
    "phi35-doctor (Phi-3.5-mini-instruct)"."""
    hub_id = run.read().get("base_model_hub_id")
    if hub_id is None:
        from iris_recipes.models import resolve_base_model

        try:
            hub_id = resolve_base_model(run.recipe().data["base_model"], run.path, fetch=False).hub_id
        except IrisError:
            hub_id = None
    return f"{recipe_name} ({hub_id.rsplit('/', 1)[-1]})" if hub_id else recipe_name


def _adapter_inputs(run: RunDir) -> tuple[Path, Path, str | None] | None:
    """(PEFT adapter dir, base model dir, base name) of a LoRA run whose recipe keeps export.adapter on; else None
    (a full fine-tune has no adapter)."""
    from iris_recipes.models import resolve_base_model

    recipe = run.recipe()
    adapter = run.file("adapter")
    if not recipe.get("export.adapter", True) or not (adapter / "adapter_config.json").is_file():
        return None
    base = resolve_base_model(
        str(recipe.data["base_model"]), base_dir=run.path, prefer=run.read().get("base_model_path")
    )
    return adapter, base.path, base.hub_id.rsplit("/", 1)[-1] if base.hub_id else None


def _write_modelfiles(run: RunDir, files: dict[str, Path], results: dict[str, dict], system: str) -> dict[str, str]:
    """An Ollama Modelfile beside each GGUF (`<file stem>.Modelfile`): the family's template and stop tokens and the
    system prompt (the export's checks compared that template with the model's, with that prompt), sampling."""
    from iris_recipes import chat_families
    from iris_recipes.export.modelfile import modelfile_text

    recipe = run.recipe()
    family = chat_families.get(recipe.get("chat_template"))
    sampling = {k: recipe.get(f"space.{k}") for k in ("temperature", "top_p", "max_new_tokens")}
    names = {}
    for quant, path in files.items():
        stop = list(family.stop) if family else [results[quant]["tokens"]["end_of_turn"]]
        text = modelfile_text(
            path.name,
            family,
            stop=[s for s in stop if s],
            system=system,
            sampling=sampling,
        )
        names[quant] = f"{path.stem}.Modelfile"
        write_text(path.with_name(names[quant]), text)
    return names


def _chat_probe(run: RunDir) -> list[dict[str, str]]:
    recipe = run.recipe()
    prompts = [*(recipe.get("space.examples") or []), *(recipe.get("eval.prompts") or [])]
    return gguf_checks.chat_probe(recipe.get("space.system_prompt"), prompts[0] if prompts else None)


def _random_weights(merged: Path) -> bool:
    """A stand-in test model (scripts/standins.py: random weights) says so in its config."""
    try:
        return bool(json.loads((merged / "config.json").read_text()).get("iris_random_weights"))
    except (OSError, ValueError):
        return False


def _say(message: str) -> None:
    print(f"export: {message}", file=sys.stderr)


def export_settings(run: RunDir, quants: list[str] | None) -> tuple[str, list[str], float]:
    """(file name stem, quantized types, min top-1 agreement), checked before the stage starts: a bad type or a
    missing converter is a setup problem, not a failed run."""
    name, recipe_quants, min_top1 = _recipe_settings(run)
    quants = check_quants(
        recipe_quants if quants is None else quants, where="export.quantize" if quants is None else "--quantize"
    )
    find_converter()
    return name, quants, min_top1


def export_gguf(
    run: RunDir,
    settings: tuple[str, list[str], float],
    info: dict[str, Any],
    *,
    require_chat_stop: bool | None = None,
    threads: int | None = None,
    log: Callable[[str], None] = _say,
) -> dict[str, Any]:
    """The export stage's work (stages.STAGES runs and records it); `info` gets its facts as they are known."""
    name, quants, min_top1 = settings
    merged = run.file("merged")
    n_params = check_merged(merged)
    out_dir = run.file("gguf")
    estimate = estimate_bytes(n_params, quants)
    ensure_space(out_dir, sum(estimate.values()), f"F16 + {', '.join(quants) or 'no quantized types'}")
    if require_chat_stop is None:
        require_chat_stop = not _random_weights(merged)
    info.update(
        llama_cpp_python=LLAMA_CPP_PYTHON_VERSION, quantize=quants, min_top1_agreement=min_top1, params=n_params
    )

    stage_dir = Path(tempfile.mkdtemp(prefix=".export-", suffix=".partial", dir=out_dir))
    try:
        entries, adapter = _build_and_check(
            run, merged, stage_dir, name, quants, min_top1, require_chat_stop, threads, info, log
        )
        if adapter is not None:  # published first: the GGUFs listed last say the export is complete
            final = out_dir / adapter["file"]
            (stage_dir / adapter["file"]).replace(final)
            final.chmod(0o644)
            adapter["file"] = f"gguf/{adapter['file']}"
        for entry in entries.values():  # all checks passed: publish under the final names
            for key in ("modelfile", "file"):  # the GGUF last: a listed GGUF always has its Modelfile
                final = out_dir / entry[key]
                (stage_dir / entry[key]).replace(final)
                final.chmod(0o644)  # mkstemp made it private; published files are meant to be read
                entry[key] = f"gguf/{entry[key]}"
    finally:
        shutil.rmtree(stage_dir, ignore_errors=True)

    previous = run.artifact("gguf") or {}
    f16_sha = entries["f16"]["sha256"]
    for quant, old in previous.items():  # earlier quantized files of the same F16 stay listed
        if quant not in entries and old.get("f16_sha256") == f16_sha and run.file(old["file"]).is_file():
            entries[quant] = old
    if adapter is not None:
        run.set_artifact("adapter_gguf", adapter)
    run.set_artifact("gguf", entries)
    return entries


def _build_and_check(
    run: RunDir,
    merged: Path,
    stage_dir: Path,
    name: str,
    quants: list[str],
    min_top1: float,
    require_stop: bool,
    threads: int | None,
    info: dict[str, Any],
    log: Callable[[str], None],
) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None]:
    """The GGUF files (and the LoRA adapter as GGUF) in `stage_dir`, every check passed: (entries, adapter entry)."""
    timings: dict[str, float] = {}
    export_log = run.file("export.log")
    t0 = time.perf_counter()
    files = {
        "f16": convert_f16(
            merged, stage_dir / gguf_filename(name, "f16"), log=export_log, model_name=model_name(run, name)
        )
    }
    timings["convert_f16"] = round(time.perf_counter() - t0, 2)
    start = export_log.stat().st_size
    for quant in quants:
        t0 = time.perf_counter()
        files[quant] = quantize(
            files["f16"], stage_dir / gguf_filename(name, quant), quant, threads=threads, log=export_log
        )
        timings[f"quantize_{quant}"] = round(time.perf_counter() - t0, 2)
    info["timings"] = timings
    info["quantize_fallbacks"] = kept = fallbacks(export_log, start)
    if kept:  # llama.cpp warns once per tensor; small models have many (rows shorter than a 256-value block)
        log(
            f"{', '.join(quants)}: {kept} tensor(s) kept a wider type than asked (row length not a multiple of the "
            f"quantization block, common in small models); llama.cpp's warnings are in {export_log}"
        )

    adapter = _adapter_inputs(run)
    if adapter is not None:
        t0 = time.perf_counter()
        lora = convert_lora(adapter[0], adapter[1], stage_dir / gguf_filename(name, "lora-f16"), log=export_log)
        adapter = (lora, base_f16_gguf(adapter[1], adapter[2]))  # the base's F16 GGUF, converted once and cached
        timings["adapter"] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    checked = gguf_checks.run_isolated(
        merged,
        files,
        require_stop=require_stop,
        threads=threads,
        probe=_chat_probe(run),
        log=run.file("export.log"),
        chat_template=run.recipe().get("chat_template"),
        system=run.recipe().get("space.system_prompt") or "",
        adapter=adapter,
    )
    results: dict[str, dict[str, Any]] = checked["results"]
    info["checks"] = results
    timings["checks"] = round(time.perf_counter() - t0, 2)
    info["positions_compared"] = checked["positions"]
    info["decode_threads"] = threads or cpu_count()
    info["machine"] = cpu_description()  # the card names the CPU that measured the decode speed

    failures = [f"Modelfile: {p}" for p in checked["modelfile"]["problems"]]
    for quant, res in results.items():
        failures += [f"{quant}: {p}" for p in res["tokens"]["problems"] + res["chat"]["problems"]]
    for quant, res in results.items():  # each quantized file against its type's measured gate
        gate = QUANT_TYPES[quant].min_top1 if quant in QUANT_TYPES else None
        if gate is not None and res["top1_agreement"] < gate:
            failures.append(
                f"{quant}: top-1 agreement with the merged model is {res['top1_agreement']:.4f}, below {gate} (what "
                f"{quant} keeps on SmolLM2, less a margin): quantizing changed what the model predicts; export "
                "another type"
            )
    if results["f16"]["top1_agreement"] < min_top1:
        f16 = results["f16"]
        failures.append(
            f"f16: top-1 agreement with the merged model is {f16['top1_agreement']:.4f} (exact "
            f"{f16['top1_agreement_exact']:.4f}, mean KL divergence {f16['kl_divergence']:.2e}), below "
            f"export.min_top1_agreement {min_top1}: the conversion changed what the model predicts"
        )
    adapter_checked = checked.get("adapter")
    if adapter_checked is not None:
        info["adapter_checks"] = adapter_checked
        failures += [f"LoRA adapter: {p}" for p in adapter_checked["chat"]["problems"]]
        if adapter_checked["top1_agreement"] < min_top1:
            failures.append(
                f"LoRA adapter: over the base model's F16 GGUF its top-1 agreement with the merged model is "
                f"{adapter_checked['top1_agreement']:.4f}, below export.min_top1_agreement {min_top1}"
            )
    if failures:
        raise IrisError(
            f"{run.path}: export checks failed (no GGUF was published; details in run.json "
            "stages.export.checks):\n  " + "\n  ".join(failures)
        )

    f16_sha = sha256_file(files["f16"])
    modelfiles = _write_modelfiles(run, files, results, checked["modelfile"]["system"])
    adapter_entry = None
    if adapter is not None:
        adapter_entry = {
            "file": adapter[0].name,
            "bytes": adapter[0].stat().st_size,
            "sha256": sha256_file(adapter[0]),
            "base_gguf": str(adapter[1]),  # the cached base F16 GGUF the adapter was checked over
            **{k: adapter_checked[k] for k in ("top1_agreement", "top1_agreement_exact", "kl_divergence")},
        }
    entries = {
        quant: {
            "file": path.name,
            "modelfile": modelfiles[quant],
            "bytes": path.stat().st_size,
            "sha256": f16_sha if quant == "f16" else sha256_file(path),
            **{key: results[quant][key] for key in ("top1_agreement", "top1_agreement_exact", "kl_divergence")},
            "decode_tok_s": results[quant]["decode_tok_s"],
            "f16_sha256": f16_sha,
        }
        for quant, path in files.items()
    }
    return entries, adapter_entry
