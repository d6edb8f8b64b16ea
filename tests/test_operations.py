"""The operation table is the one source of the tools: every operation's tool and endpoint exist, every
tool is registered as the table says (name, title, annotations, App binding), the instructions and the
App's catalogue come from it, and no module spells a tool's name anywhere else."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from mj_mcp import errors
from mj_mcp.core import actions
from mj_mcp.core.operations import GENERATING, MODEL_TOOLS, OPERATION, OPERATIONS, TOOL, TOOLS, Effect
from mj_mcp.settings import Settings
from mj_mcp.ui import catalogue
from mj_mcp.upstream import ENDPOINTS

PACKAGE = Path(__file__).resolve().parent.parent / "mj_mcp"


def test_every_operation_names_a_tool_and_an_endpoint_that_exist():
    for op in OPERATIONS:
        assert op.tool in TOOL, op
        assert op.endpoint is None or op.endpoint in ENDPOINTS, op
        assert op.label
    assert {op.tool for op in OPERATIONS} == set(TOOL), "a tool no operation runs"
    for action in actions.CATALOGUE:
        assert action.tool in GENERATING, action
    assert len({t.name for t in TOOLS}) == len(TOOLS) and len(OPERATION) == len(OPERATIONS)


def test_the_tools_are_registered_as_the_table_says():
    from mj_mcp.server import build_server

    server = build_server(Settings(store="memory"))
    listed = {t.name: t for t in server._tool_manager.list_tools()}
    assert set(listed) == {t.name for t in TOOLS}
    for spec in TOOLS:
        tool = listed[spec.name]
        assert tool.title == spec.title
        ui = (tool.meta or {}).get("ui", {})
        assert bool(ui) is (spec.in_app or spec.app_only)
        assert ("visibility" in ui and "model" not in ui["visibility"]) is spec.app_only
        read_only = bool(tool.annotations and tool.annotations.read_only_hint)
        assert read_only is (spec.effect in (Effect.LOOKS_UP, Effect.READS))


def test_the_instructions_and_the_apps_catalogue_come_from_the_table():
    from mj_mcp.server import _instructions

    text = _instructions(Settings(store="memory"))
    for spec in MODEL_TOOLS:
        assert f"{spec.name} {spec.does}" in text
    assert "view_image" not in text  # the App's own tool is not the model's
    cat = catalogue()
    assert set(cat["tools"]) == set(TOOL) and set(cat["operations"]) == set(OPERATION)
    assert {n for n, t in cat["tools"].items() if t["generates"]} == GENERATING
    assert cat["operations"]["list"]["tool"] == OPERATION["list"].tool


def _string_constants(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    return [
        (node.value, node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_no_module_spells_a_tool_name_but_the_table():
    names = {t.name for t in TOOLS}
    # "imagine" and "blend" are words too (an endpoint, a name's fallback): as a literal, only a call counts
    compound = {n for n in names if "_" in n}
    spelled = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "operations.py" and path.parent.name == "core":
            continue
        for value, line in _string_constants(path):
            # a literal that is a tool's name, or a message calling one: "Call get_task(" ...
            called = set(re.findall(r"\b([a-z_]+)\(", value)) & names
            if called or value in compound:
                spelled.append(f"{path.relative_to(PACKAGE)}:{line}: {value[:60]!r}")
    assert spelled == [], "\n".join(spelled)


def test_the_next_steps_of_the_error_tree_name_tools_that_exist():
    """errors.py sits below the table, so its next steps spell tool names in plain words: they must be
    tools of the table."""
    source = (PACKAGE / "errors.py").read_text()
    named = set(re.findall(r"\bcall ([a-z]+_[a-z_]+)\b", source))
    assert named and named <= set(TOOL), named
    assert issubclass(errors.UpstreamTimeout, errors.UpstreamError)
