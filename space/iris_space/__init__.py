"""The iris-recipes Space's engine: settings, the variants manifest, models and their KV states, chat, speech.

Standalone: needs only llama-cpp-python, numpy, huggingface_hub and (for voice input) pocketsphinx; nothing from
iris_recipes, so it deploys to a Hugging Face Space beside app.py.
"""
