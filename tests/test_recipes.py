"""conf/recipe: a measured training recipe applies to exactly its (data, model, optim) choice."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from train_config import CONF, compose_train

RECIPES = sorted(p.stem for p in (CONF / "recipe").glob("*.yaml"))


def options(group: str) -> set:
    return {p.stem for p in (CONF / group).glob("*.yaml")}


def split_name(recipe: str) -> tuple:
    """``cifar10_cnn_sgd`` -> (data, model, optim), matched against the existing options (names hold '_')."""
    for data in options("data"):
        for model in options("model"):
            rest = recipe[len(f"{data}_{model}_"):]
            if recipe.startswith(f"{data}_{model}_") and rest in options("optim"):
                return data, model, rest
    raise AssertionError(f"conf/recipe/{recipe}.yaml names no existing <data>_<model>_<optim> choice: it never applies")


def recipe_values(recipe: str) -> dict:
    values = OmegaConf.to_container(OmegaConf.load(CONF / "recipe" / f"{recipe}.yaml"))
    flat = {}

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value

    walk(values, "")
    return flat


def test_there_is_the_headline_recipe():
    assert "cifar10_cnn_sgd" in RECIPES


@pytest.mark.parametrize("recipe", RECIPES)
def test_a_recipe_applies_to_its_choice_and_an_override_wins(recipe):
    data, model, optim = split_name(recipe)
    values = recipe_values(recipe)
    cfg = compose_train([f"data={data}", f"model={model}", f"optim={optim}"])
    assert cfg.hydra.runtime.choices["recipe"] == recipe
    assert {key: OmegaConf.select(cfg, key) for key in values} == values
    key, value = next((k, v) for k, v in values.items() if isinstance(v, float))
    changed = value * 0.5
    overridden = compose_train([f"data={data}", f"model={model}", f"optim={optim}", f"{key}={changed}"])
    assert OmegaConf.select(overridden, key) == changed


@pytest.mark.parametrize("recipe", RECIPES)
def test_a_recipe_leaves_other_choices_alone(recipe):
    data, model, optim = split_name(recipe)
    other_optim = sorted(options("optim") - {optim})[0]
    for overrides in ([f"data={data}", f"model={model}", f"optim={other_optim}"], [f"model={model}", f"optim={optim}"]):
        plain = compose_train(overrides)
        assert plain.hydra.runtime.choices.get("recipe") != recipe
        assert plain.optim.weight_decay != recipe_values(recipe).get("optim.weight_decay", object())
