"""Datasets: the registry (datasets/NAME/dataset.yaml), format adapters and the data stage.

    prepare(recipe, out_dir, count_tokens=None) -> report   train.jsonl / val.jsonl / report.json
    check_dataset_config(recipe_data, recipe_path=None)     problems found without reading data
    load_split(path) -> rows                                read train.jsonl / val.jsonl back

Normalized rows: {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...], "reference": {...}?}
"""

from iris_recipes.data.cells import RowProblem
from iris_recipes.data.config_check import METRIC_NEEDS, check_dataset_config
from iris_recipes.data.formats import Mapping
from iris_recipes.data.prepare import load_split, prepare
from iris_recipes.data.registry import Entry, entry_names, load_entry

__all__ = [
    "METRIC_NEEDS",
    "Entry",
    "Mapping",
    "RowProblem",
    "check_dataset_config",
    "entry_names",
    "load_entry",
    "load_split",
    "prepare",
]
