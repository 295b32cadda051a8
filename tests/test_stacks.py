"""The version stacks `make stack-floor` / `make stack-colab` test (.ci/stack.py)."""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("stack", ROOT / ".ci" / "stack.py")
stack = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stack)


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower()


def test_every_requirement_of_the_project_has_a_tested_floor():
    reqs = stack.requirements()
    pins = stack.floor_pins(reqs)
    assert sorted(pins) == sorted({_name(r) for r in reqs})
    assert pins["torch"] == re.search(r"torch>=([0-9.]+)", " ".join(reqs)).group(1)
    assert pins["jupyter-book"] == "1.0.2"  # the upper bound (<2) is not mistaken for the floor


def test_floor_pins_read_the_lower_bound_and_refuse_a_range_without_one():
    assert stack.floor_pins(["datasets>=3.0,!=4.0.*", "a[x] >= 1.2 ; python_version>'3'"]) == {
        "datasets": "3.0", "a": "1.2"}
    with pytest.raises(ValueError, match="'numpy' has no lower bound"):
        stack.floor_pins(["numpy"])
    with pytest.raises(ValueError, match="excludes its own lower bound"):
        stack.floor_pins(["datasets>=4.0.0,!=4.0.*"])


def test_colab_stack_pins_only_packages_the_project_names_and_satisfies_their_ranges():
    pins = stack.read_stack_file(stack.COLAB_STACK)
    floors = stack.floor_pins(stack.requirements())
    assert {"torch", "transformers", "datasets", "accelerate"} <= set(pins)
    assert set(pins) <= set(floors), set(pins) - set(floors)

    def version(text):
        return tuple(int(part) for part in re.findall(r"\d+", text)[:3])

    below = {name: (pins[name], floors[name]) for name in pins if version(pins[name]) < version(floors[name])}
    assert not below, f"the Colab stack is below the declared floor: {below}"


def test_a_bad_stack_file_line_names_the_line(tmp_path):
    bad = tmp_path / "stack.txt"
    bad.write_text("# comment\ntorch==2.8.0\ntransformers 4.57\n")
    with pytest.raises(ValueError, match=r"stack.txt:3: expected 'name==version'"):
        stack.read_stack_file(bad)


def test_unknown_stack_names_the_choices(capsys):
    assert stack.main(["tpu"]) == 2
    assert "expected one of floor, colab" in capsys.readouterr().err
