"""cnnbook.fast_train_cli: arguments become a Recipe, and both module names start it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnbook.fast_train_cli import parse_args, recipe_from_args

ROOT = Path(__file__).resolve().parent.parent


def test_command_line_arguments_become_a_recipe():
    args = parse_args(["--epochs", "3", "--ema-decay", "0", "--no-tta", "--channels-last", "on"])
    recipe = recipe_from_args(args)
    assert recipe.epochs == 3 and recipe.ema_decay is None and not recipe.tta
    assert recipe.channels_last is True and recipe.amp is None
    with pytest.raises(ValueError, match="batch_size"):
        recipe_from_args(parse_args(["--batch-size", "0"]))


@pytest.mark.parametrize("module", ["cnnbook.fast_train_cli", "cnnbook.fast_train"])
def test_both_module_names_run_the_command_line(module):
    """``python -m cnnbook.fast_train`` (chapter 10, appendix C) and the CLI module itself."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "utils"), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--epochs" in result.stdout and "--rank-states" in result.stdout
