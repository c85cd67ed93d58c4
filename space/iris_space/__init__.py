"""The iris-recipes Space: its engine (settings, the variants manifest, models and their KV states, chat, speech) and
what serves it (ui: the chat page; gradio_api: its gradio_client endpoints; openai_api: the /v1 API;
gradio_patches: Gradio's idle polling slowed).

Standalone: needs only llama-cpp-python, numpy, huggingface_hub, gradio (which brings fastapi and uvicorn) and (for
voice input) pocketsphinx; nothing from iris_recipes, so it deploys to a Hugging Face Space beside app.py. The engine
modules import no web framework, so the API alone (`app.py --no-ui`) loads no Gradio.
"""
