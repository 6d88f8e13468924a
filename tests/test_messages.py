"""Library messages name settings in the words of the Python API; only the CLI names
flags (issue 21). A Python user of `AgeEstimator(expand=...)` or `agecli.evaluate(...)`
is never told about a `--flag` they did not type; a CLI user still reads the flag."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

import agecli
from agecli.cli import app

PACKAGE = Path(agecli.__file__).parent
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
# A command line shown for the user to run is not a setting: its own flags stay.
COMMAND = re.compile(r"(\bagecli [a-z][a-z-]*|\btorchrun|\bpip install|\bpython \S+\.py)\b[^;:,()]*$")
SETTING = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")
# Settings of the Python API that no command has as an option: they reach Python callers only.
API_ONLY = {"threads", "color", "image", "crops", "fps", "max_gap"}


def _library_modules() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if p != PACKAGE / "cli.py"]


def _message_texts(path: Path) -> list[tuple[int, str]]:
    """Every string of the module's code that is not a docstring or a bare string
    statement: messages raised, logged, warned or printed, and the fragments and labels
    they are built from (`check_writable_dir(out, "output")`). An f-string is one text,
    its fields written `{}`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    texts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = []
            for v in node.values:
                skip.add(id(v))
                parts.append(v.value if isinstance(v, ast.Constant) else "{}")
            texts.append((node.lineno, "".join(parts)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            texts.append((node.lineno, node.value))
    return texts


def _flags_named(text: str) -> list[str]:
    return [m[0] for m in FLAG.finditer(text) if not COMMAND.search(text[:m.start()])]


def test_library_messages_name_settings_not_flags():
    """No string in library code (everything under agecli/ but cli.py) names a CLI flag;
    docstrings and comments may. The message names the setting, `expand`, and the CLI
    writes it as --expand (cli.flag_words)."""
    found = [f"{p.relative_to(PACKAGE.parent)}:{line}: {flags} in {text[:90]!r}"
             for p in _library_modules() for line, text in _message_texts(p) if (flags := _flags_named(text))]
    assert not found, f"{len(found)} library strings name CLI flags:\n" + "\n".join(found)


def test_every_setting_a_message_names_is_an_option_of_some_command():
    """A backticked name in a library message is a setting the CLI can write as a flag:
    a parameter of one of its commands (a typo, or a renamed option, would reach CLI
    users in backticks)."""
    group = typer.main.get_command(app)
    params = {p.name for cmd in group.commands.values() for p in cmd.params}
    named = {(p.relative_to(PACKAGE.parent).as_posix(), name)
             for p in _library_modules() for _, text in _message_texts(p) for name in SETTING.findall(text)}
    assert {(where, name) for where, name in named if name not in params | API_ONLY} == set()
    assert not API_ONLY & params, "an option now: take it out of API_ONLY"


def test_the_checker_finds_flags_and_lets_command_lines_be():
    assert _flags_named("--expand must be between 0 and 3") == ["--expand"]
    assert _flags_named("choose one of {} and --int8") == ["--int8"]
    assert _flags_named("run `agecli prepare --dataset {} --data-dir X` first") == []
    assert _flags_named("make it with python bench/bench_int8.py --write; or run without --int8") == ["--int8"]
    assert _flags_named("`expand` must be between 0 and 3, not -1") == []


def test_the_python_api_names_the_keyword():
    """AgeEstimator(expand=-1): the error names `expand`, the keyword the caller typed,
    and carries it as data; it is an OptionError, so also a ValueError."""
    from agecli.errors import OptionError

    with pytest.raises(OptionError) as e:
        agecli.AgeEstimator(expand=-1)
    assert "`expand`" in str(e.value) and "--expand" not in str(e.value)
    assert e.value.setting == "expand" and isinstance(e.value, ValueError)


def test_the_cli_names_the_flag_for_the_same_mistake(tmp_path):
    res = CliRunner().invoke(app, ["demo", "--expand", "-1"])
    assert res.exit_code == 2 and "--expand -1 is outside 0-3" in res.stderr and "`" not in res.stderr, res.output


def test_the_cli_names_the_flag_the_user_typed():
    """An option with two spellings (--model, --resume) is named as the user typed it."""
    from agecli.cli import flag_names

    demo = typer.main.get_command(app).commands["demo"]
    assert flag_names(demo, ["--resume", "m.onnx"])["model"] == "--resume"
    assert flag_names(demo, ["--model=m.onnx"])["model"] == "--model"
    assert flag_names(demo, [])["model"] == "--model" and flag_names(demo, [])["output_dir"] == "--output-dir"
