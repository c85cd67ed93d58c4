"""GGUF export with the real llama.cpp converter and quantizer, on the tiny model and on the builtin SmolLM2."""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest_export import make_run  # noqa: E402
from iris_recipes import chat_families  # noqa: E402
from iris_recipes.errors import IrisError  # noqa: E402
from iris_recipes.fsutil import sha256_file  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _leftovers(run) -> list[Path]:
    gguf = run.file("gguf")
    return sorted(p for p in gguf.rglob("*")) if gguf.exists() else []


# -- the converter ------------------------------------------------------------------------------------------------
def _sdist(path: Path, files: dict[str, str], version: str = "0.3.36") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"llama_cpp_python-{version}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_converter_extracts_only_the_converter(tmp_path, monkeypatch):
    from iris_recipes.export import converter as conv

    monkeypatch.setenv("IRIS_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(IrisError, match="python -m iris_recipes.export.converter fetch"):
        conv.find_converter()
    sdist = _sdist(
        tmp_path / "llama_cpp_python-0.3.36.tar.gz",
        {
            "vendor/llama.cpp/convert_hf_to_gguf.py": "print('hi')\n",
            "vendor/llama.cpp/convert_lora_to_gguf.py": "print('lora')\n",
            "vendor/llama.cpp/conversion/__init__.py": "",
            "vendor/llama.cpp/gguf-py/gguf/__init__.py": "",
            "vendor/llama.cpp/gguf-py/tests/test_x.py": "",
            "vendor/llama.cpp/src/llama.cpp": "int main;",
            "llama_cpp/llama.py": "",
        },
    )
    script = conv.fetch_converter(sdist)
    root = script.parent
    assert script == conv.find_converter()
    got = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert got == [
        "conversion/__init__.py",
        "convert_hf_to_gguf.py",
        "convert_lora_to_gguf.py",
        "gguf-py/gguf/__init__.py",
        "iris-converter.json",
    ]
    assert conv.converter_env(script)["PYTHONPATH"].split(":")[0] == str(root / "gguf-py")


def test_converter_rejects_bad_sdists(tmp_path, monkeypatch):
    from iris_recipes.export import converter as conv

    monkeypatch.setenv("IRIS_CACHE_DIR", str(tmp_path / "cache"))
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(IrisError, match="not a readable"):
        conv.extract_converter(broken)
    other = _sdist(tmp_path / "other.tar.gz", {"README.md": "x"})
    with pytest.raises(IrisError, match="convert_hf_to_gguf.py"):
        conv.extract_converter(other)
    assert not (tmp_path / "cache" / "llama.cpp-0.3.36").exists()
    assert not list((tmp_path / "cache").glob(".*partial"))


def test_export_without_converter_names_the_fetch_command(tmp_path, monkeypatch, tiny_model_dir):
    from iris_recipes.stages import export_run

    run = make_run(tmp_path / "runs", tiny_model_dir)
    monkeypatch.setenv("IRIS_CACHE_DIR", str(tmp_path / "empty-cache"))
    with pytest.raises(IrisError, match="converter fetch"):
        export_run(run)
    assert run.stage_info("export") == {}  # a setup problem, not a failed run


# -- bad input: each a clear error, no file left ------------------------------------------------------------------
def test_unknown_quant_type_fails_before_any_work(tmp_path, tiny_model_dir):
    from iris_recipes.cli import main
    from iris_recipes.stages import export_run

    run = make_run(tmp_path / "runs", tiny_model_dir)
    with pytest.raises(IrisError) as err:
        export_run(run, ["q4_k_m", "q3_xs"])
    assert "'q3_xs'" in str(err.value) and "q5_k_m" in str(err.value)
    assert run.stage_info("export") == {} and not _leftovers(run)
    assert main(["export", str(run.path), "--quantize", "q4_k_m,bogus"]) == 2


@pytest.mark.parametrize("threads", ["0", "-2"])
def test_thread_count_below_one_fails_before_any_work(tmp_path, tiny_model_dir, capsys, threads):
    from iris_recipes.cli import main

    run = make_run(tmp_path / "runs", tiny_model_dir)
    assert main(["export", str(run.path), "--threads", threads]) == 2
    assert f"--threads {threads}: give 1 or more" in capsys.readouterr().err
    assert run.stage_info("export") == {} and not _leftovers(run)


def test_run_without_merged_model(tmp_path, tiny_model_dir, converter):
    import shutil

    from iris_recipes.stages import export_run

    run = make_run(tmp_path / "runs", tiny_model_dir)
    shutil.rmtree(run.file("merged"))
    with pytest.raises(IrisError, match="no merged model"):
        export_run(run)
    info = run.stage_info("export")
    assert info["status"] == "failed" and "no merged model" in info["error"]
    assert not _leftovers(run)


@pytest.mark.parametrize("damage", ["truncate", "header"])
def test_corrupt_safetensors(tmp_path, tiny_model_dir, converter, damage):
    from iris_recipes.stages import export_run

    run = make_run(tmp_path / "runs", tiny_model_dir)
    weights = run.file("merged", "model.safetensors")
    data = weights.read_bytes()
    weights.write_bytes(
        data[: len(data) // 2] if damage == "truncate" else b"\x10\x00\x00\x00\x00\x00\x00\x00{bad json" + data[20:]
    )
    with pytest.raises(IrisError) as err:
        export_run(run)
    assert str(weights) in str(err.value)
    assert ("truncated" if damage == "truncate" else "corrupt") in str(err.value)
    assert not _leftovers(run)


def test_not_enough_disk_space(tmp_path, tiny_model_dir, converter, monkeypatch):
    from iris_recipes.export import hf_to_gguf
    from iris_recipes.stages import export_run

    run = make_run(tmp_path / "runs", tiny_model_dir)
    monkeypatch.setattr(hf_to_gguf, "free_bytes", lambda path: 10 << 20)
    with pytest.raises(IrisError, match="not enough disk space.*MiB needed, 10 MiB free"):
        export_run(run)
    assert not _leftovers(run)


def test_converter_failure_leaves_nothing(tmp_path, tiny_model_dir, converter):
    from iris_recipes.stages import export_run

    run = make_run(tmp_path / "runs", tiny_model_dir)
    config = json.loads(run.file("merged", "config.json").read_text())
    config["architectures"] = ["NoSuchModelForCausalLM"]
    run.file("merged", "config.json").write_text(json.dumps(config))
    with pytest.raises(IrisError, match="converter failed"):
        export_run(run)
    assert not _leftovers(run)
    assert "NoSuchModelForCausalLM" in run.file("export.log").read_text()


# -- the real thing -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_model_dir, converter):
    from iris_recipes.stages import export_run

    run = make_run(tmp_path_factory.mktemp("runs"), tiny_model_dir)
    return run, export_run(run)


@pytest.mark.slow
def test_tiny_export_f16_q8_q4km(exported):
    run, entries = exported
    assert list(entries) == ["f16", "q8_0", "q4_k_m"]
    assert run.artifact("gguf") == entries
    for quant, e in entries.items():
        path = run.file(e["file"])
        assert e["file"] == f"gguf/tiny-export-{quant}.gguf" and path.is_file()
        assert path.read_bytes()[:4] == b"GGUF"
        assert e["bytes"] == path.stat().st_size and e["sha256"] == sha256_file(path)
        assert 0 <= e["top1_agreement"] <= 1 and e["decode_tok_s"] > 0
    assert entries["f16"]["top1_agreement"] >= 0.99
    assert entries["q4_k_m"]["bytes"] < entries["f16"]["bytes"]
    assert sorted(p.name for p in run.file("gguf").iterdir()) == sorted(
        f"tiny-export-{q}{ext}" for q in entries for ext in (".gguf", ".Modelfile")
    )  # no staging leftovers
    # an Ollama Modelfile beside each GGUF: the file, the family's template (checked against the model's), stops
    family = chat_families.get("chatml")
    for quant, e in entries.items():
        assert e["modelfile"] == f"gguf/tiny-export-{quant}.Modelfile"
        text = run.file(e["modelfile"]).read_text()
        assert text.startswith(f'FROM ./tiny-export-{quant}.gguf\nTEMPLATE """{family.ollama_template}"""\n')
        assert [ln for ln in text.splitlines() if ln.startswith("PARAMETER stop")] == [
            f'PARAMETER stop "{s}"' for s in family.stop
        ]

    info = run.stage_info("export")
    assert info["status"] == "done" and info["positions_compared"] > 100
    for res in info["checks"].values():
        tokens = res["tokens"]
        assert tokens["passed"] and tokens["chat_template_matches"] and tokens["prompts_tokenized_alike"] == 8
        assert tokens["eos"] == tokens["end_of_turn"] == "<|im_end|>" and tokens["end_of_turn_is_eog"]
        assert tokens["bos"] == "<|im_start|>"
        chat = res["chat"]
        assert chat["passed"] and chat["stop_required"] is False  # random weights need not stop...
        assert chat["finish_reason"] in ("stop", "length")  # ...but must end by EOG or the token limit
        assert "<|im_" not in chat["reply"]


@pytest.mark.slow
def test_export_output_is_one_line_about_llama_cpps_warnings(tmp_path, tiny_model_dir, converter):
    """What a person sees from `iris-recipes export`: the quantizer's per-tensor warnings (written by llama.cpp's C
    code straight to stderr) go to RUN/export.log; the screen gets one summary line and the table. The tiny
    model's 64-wide rows make every K-quant tensor fall back, as SmolLM2's 576-wide rows do in the demo."""
    import subprocess

    run = make_run(tmp_path / "runs", tiny_model_dir, quantize=("q8_0", "q4_k_m"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run(
        [sys.executable, "-m", "iris_recipes", "export", str(run.path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert res.returncode == 0, res.stderr
    log = run.file("export.log").read_text()
    warnings = [line for line in log.splitlines() if "not divisible by" in line and "falling back" in line]
    assert len(warnings) >= 10 and run.stage_info("export")["quantize_fallbacks"] == len(warnings)
    assert res.stderr.splitlines() == [
        f"export: q8_0, q4_k_m: {len(warnings)} tensor(s) kept a wider type than asked (row length not a multiple of "
        f"the quantization block, common in small models); llama.cpp's warnings are in {run.file('export.log')}"
    ]
    assert [line.split()[0] for line in res.stdout.splitlines()] == ["f16", "q8_0", "q4_k_m"]


@pytest.mark.slow
def test_modelfile_template_that_renders_otherwise_fails_the_checks(exported, tiny_model_dir, monkeypatch):
    from iris_recipes.export import gguf_checks

    run, entries = exported
    files = {"f16": run.file(entries["f16"]["file"])}
    ok = gguf_checks.run_all(run.file("merged"), files, require_stop=False, threads=1, chat_template="chatml")
    assert ok["modelfile"]["problems"] == []
    # the tiny model's template adds SmolLM2's default system prompt: the Modelfile says it
    assert ok["modelfile"]["system"].startswith("You are a helpful AI assistant")
    chatml = chat_families.get("chatml")
    wrong = chat_families.ChatFamily(
        **{**chatml.__dict__, "ollama_template": chatml.ollama_template.replace("\n", "", 1)}
    )
    monkeypatch.setitem(chat_families.FAMILIES, "chatml", wrong)
    bad = gguf_checks.run_all(run.file("merged"), files, require_stop=False, threads=1, chat_template="chatml")
    problems = bad["modelfile"]["problems"]
    assert problems and "renders a 2-message conversation differently" in problems[0]


@pytest.mark.slow
def test_reexport_replaces_its_own_files_only(exported, tmp_path, tiny_model_dir):
    from iris_recipes.cli import main

    run, first = exported
    other = make_run(tmp_path / "runs", tiny_model_dir)  # another run of the same recipe, already exported
    other.file("gguf").mkdir()
    other_file = other.file("gguf", "tiny-export-q8_0.gguf")
    other_file.write_bytes(b"GGUF another run")
    before = run.file("gguf", "tiny-export-q4_k_m.gguf").stat().st_mtime_ns

    assert main(["export", str(run.path), "--quantize", "q8_0"]) == 0
    entries = run.artifact("gguf")
    assert entries["f16"]["sha256"] == first["f16"]["sha256"]  # conversion is deterministic
    assert entries["q8_0"]["sha256"] == first["q8_0"]["sha256"]
    assert entries["q4_k_m"] == first["q4_k_m"]  # not re-made, still listed: same F16
    assert run.file("gguf", "tiny-export-q4_k_m.gguf").stat().st_mtime_ns == before
    assert other_file.read_bytes() == b"GGUF another run"


@pytest.mark.slow
def test_builtin_smollm2_export_stops_on_its_own(tmp_path, smollm2_dir, converter):
    from iris_recipes.stages import export_run

    prompt = "What is the capital of France? Answer in a few words."
    run = make_run(
        tmp_path / "runs",
        smollm2_dir,
        name="smollm2-export",
        quantize=("q8_0",),
        link=True,
        extra=f'eval: {{prompts: ["{prompt}"]}}\n',
    )
    entries = export_run(run)
    info = run.stage_info("export")
    assert entries["f16"]["top1_agreement"] >= 0.99
    for quant in ("f16", "q8_0"):
        chat = info["checks"][quant]["chat"]
        assert chat["prompt"] == prompt  # the recipe's own prompt, as the Space would send it
        assert chat["stop_required"] and chat["stopped_on_its_own"] and chat["finish_reason"] == "stop"
        assert chat["reply"].strip() and "<|im_" not in chat["reply"]
    assert info["checks"]["q8_0"]["top1_agreement"] > 0.8


def test_agreement_forgives_near_ties_only():
    import numpy as np

    from iris_recipes.export.gguf_checks import NEAR_TIE_NATS, _log_softmax, agreement

    # three positions of a 4-token vocabulary: a clear choice, a near-tie, and another clear choice
    ref_logits = np.array([[5.0, 1.0, 0.0, 0.0], [2.0, 2.0 - NEAR_TIE_NATS / 2, 0.0, 0.0], [0.0, 0.0, 4.0, 1.0]])
    reference = [_log_softmax(ref_logits)]
    same = agreement(reference, [ref_logits.copy()])
    assert same == {"top1_agreement": 1.0, "top1_agreement_exact": 1.0, "kl_divergence": 0.0}
    tie_flipped = ref_logits.copy()
    tie_flipped[1] = [2.0 - NEAR_TIE_NATS / 2, 2.0, 0.0, 0.0]  # rounding swaps the near-tie: still agreement
    res = agreement(reference, [tie_flipped])
    assert res["top1_agreement"] == 1.0 and res["top1_agreement_exact"] == round(2 / 3, 4)
    assert res["kl_divergence"] > 0
    clear_flipped = ref_logits.copy()
    clear_flipped[0] = [1.0, 5.0, 0.0, 0.0]  # a clear choice changed: disagreement
    assert agreement(reference, [clear_flipped])["top1_agreement"] == round(2 / 3, 4)


@pytest.mark.slow
def test_conversion_that_changes_predictions_fails(tmp_path, smollm2_dir, converter, monkeypatch):
    """A converter bug of a classic kind (MLP gate and up projections swapped) in a real model: the file loads,
    its tokens and template are right, but its predictions are not the merged model's. Nothing may be published."""
    import shutil

    from safetensors.torch import load_file, save_file

    from iris_recipes.export import stage
    from iris_recipes.stages import export_run

    broken = tmp_path / "broken"
    shutil.copytree(smollm2_dir, broken)
    weights = load_file(broken / "model.safetensors")
    for name in [n for n in weights if n.endswith("mlp.gate_proj.weight")]:
        up = name.replace("gate_proj", "up_proj")
        weights[name], weights[up] = weights[up], weights[name]
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    real_convert = stage.convert_f16
    monkeypatch.setattr(stage, "convert_f16", lambda merged, dest, **kw: real_convert(broken, dest, **kw))

    run = make_run(tmp_path / "runs", smollm2_dir, name="smollm2-export", quantize=(), link=True)
    with pytest.raises(
        IrisError,
        match=r"f16: top-1 agreement with the merged model is 0\.\d+ .*below "
        r"export.min_top1_agreement 0.99",
    ):
        export_run(run)
    f16 = run.stage_info("export")["checks"]["f16"]
    assert f16["tokens"]["passed"]  # only the predictions are wrong
    assert f16["top1_agreement"] < 0.9 and f16["kl_divergence"] > 0.1
    assert not _leftovers(run)


@pytest.mark.slow
def test_tokenizer_llama_cpp_misreads_fails_cleanly(tmp_path, tiny_model_dir, converter):
    """transformers' own GGUF tokenizer import (byte fallback + SentencePiece decoder) is turned into a Llama-2
    vocabulary by the converter; llama.cpp then aborts or mis-tokenizes. The export must fail clearly, publish
    nothing, and the process running it must survive."""
    from transformers import AutoTokenizer

    from iris_recipes.models import BUILTIN_MODELS, builtin_gguf_path
    from iris_recipes.stages import export_run

    gguf = builtin_gguf_path(BUILTIN_MODELS["smollm2-135m-instruct"])
    run = make_run(tmp_path / "runs", tiny_model_dir)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        run.file("merged", name).unlink()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tok.chat_template = AutoTokenizer.from_pretrained(tiny_model_dir).chat_template
    tok.eos_token = "<|im_end|>"
    tok.save_pretrained(run.file("merged"))
    with pytest.raises(IrisError) as err:
        export_run(run)
    assert "check" in str(err.value)
    assert run.stage_info("export")["status"] == "failed"
    assert not _leftovers(run)


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 10 MiB tmpfs (needs root and a kernel that allows it; skipped elsewhere)."""
    import os
    import subprocess

    mnt = tmp_path / "small"
    mnt.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=10m", "tmpfs", str(mnt)], capture_output=True).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


@pytest.mark.slow
def test_disk_filling_up_mid_export_leaves_nothing(tmp_path, tiny_model_dir, converter, small_tmpfs, monkeypatch):
    """The space estimate is bypassed so the disk really fills up: F16 (8 MB) fits, Q8_0 does not."""
    from iris_recipes.export import hf_to_gguf
    from iris_recipes.stages import export_run

    run = make_run(tmp_path / "runs", tiny_model_dir, quantize=("q8_0",))
    run.file("gguf").symlink_to(small_tmpfs, target_is_directory=True)
    monkeypatch.setattr(hf_to_gguf, "free_bytes", lambda path: 1 << 40)
    with pytest.raises(IrisError, match="could not quantize to q8_0"):
        export_run(run)
    assert list(small_tmpfs.iterdir()) == []
    assert run.stage_info("export")["status"] == "failed"


def test_gguf_checks_use_the_exports_threads(monkeypatch):
    """`iris-recipes export --threads N` reaches every llama.cpp the checks load; without it, the CPUs this process may
    use (its affinity mask), never the host's count."""
    from conftest_space import smol_gguf
    from iris_recipes.export import gguf_checks

    monkeypatch.setattr(gguf_checks, "cpu_count", lambda: 3)
    for threads, want in ((1, 1), (None, 3)):
        llm = gguf_checks._llama(smol_gguf(), threads, n_ctx=64)
        try:
            assert (llm.context_params.n_threads, llm.context_params.n_threads_batch) == (want, want)
        finally:
            llm.close()
