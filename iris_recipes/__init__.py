"""iris-recipes: declarative, YAML-driven LLM fine-tuning on Axolotl."""

__version__ = "0.1.0"
