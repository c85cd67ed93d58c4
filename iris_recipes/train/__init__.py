"""Training through Axolotl: recipe -> Axolotl config (config), launch command (launch), the Axolotl plugin used in
the training processes (plugin), live progress (progress) and metrics.jsonl (metrics).

Only `plugin` imports Axolotl at import time, and only the training processes import it.
"""
