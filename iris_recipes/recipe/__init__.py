"""Recipes: YAML files describing one fine-tuned variant. `load_recipe` is the one way to read them."""

from iris_recipes.recipe.loader import Recipe, dump_yaml, load_recipe, resolve

__all__ = ["Recipe", "dump_yaml", "load_recipe", "resolve"]
