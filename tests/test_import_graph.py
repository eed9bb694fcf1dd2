"""The package's layout holds: no module of `bot/` imports one that imports it back, at import
time or inside a function (imports only for type checking excepted), and only the wiring and the
provider's own folder name iPay's client."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parent.parent / "bot"


def _module(path: Path) -> str:
    parts = list(path.relative_to(BOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(tree: ast.Module) -> set[int]:
    """The ids of the import nodes under `if TYPE_CHECKING:`."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(inner) for inner in ast.walk(node)}
    return skipped


def import_graph() -> dict[str, set[str]]:
    """Each module of `bot/` and the modules of `bot/` it imports (a package's own parents left out)."""
    paths = {_module(path): path for path in BOT.rglob("*.py")}

    def known(name: str) -> str | None:
        while name and name not in paths:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        tree = ast.parse(path.read_text())
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        skipped = _type_checking_only(tree)
        targets: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for name in names:
                target = known(name) if name.startswith("bot") else None
                if target and target != module and not module.startswith(target + "."):
                    targets.add(target)
        graph[module] = targets
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_module_of_the_bot_imports_one_that_imports_it_back() -> None:
    assert circles(import_graph()) == []


def test_only_the_wiring_and_the_providers_name_the_ipay_client() -> None:
    naming = sorted(
        module
        for module, targets in import_graph().items()
        if any(target.startswith("bot.providers.ipay") for target in targets)
        and not module.startswith(("bot.providers", "bot.sandbox"))
    )
    assert naming == ["bot.app"]


def _third_party_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    skipped = _type_checking_only(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.partition(".")[0])
    return found


def test_services_providers_and_the_store_know_neither_telegram_nor_sentences() -> None:
    """Dependencies point one way: the Telegram edge calls the services, which call the providers
    and the store. Services pass kinds and data; the edge says them in the reader's language."""
    lower = [p for p in BOT.rglob("*.py") if p.name == "service.py" or p.parent.name in ("store", "providers")]
    lower += list((BOT / "providers").rglob("*.py"))
    graph, offending = import_graph(), {}
    for path in sorted(set(lower)):
        module = _module(path)
        prose = sorted(t for t in graph[module] if t.endswith(".sentences") or t == "bot.i18n.formats")
        telegram = "telegram" in _third_party_imports(path)
        if prose or telegram:
            offending[module] = (prose, telegram)
    assert offending == {}
