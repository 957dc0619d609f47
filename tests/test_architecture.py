"""The import structure holds (issue 10): no import circle anywhere in generator and bot, generator never
imports bot, and the frontends never import torch, generator or the store: they go through bot.service. Read from the source with grimp (no module is run);
imports under `if TYPE_CHECKING:` do not count (they never run).

A new rule is one line in FORBIDDEN: (the packages it applies to, what they may not import directly, why).
"""

from __future__ import annotations

import grimp
import pytest

PACKAGES = ("generator", "bot")
FRONTENDS = ("bot.cli", "bot.repl", "bot.discord", "bot.api", "bot.llmplugin")

# Circles not broken yet, each with the step that breaks it. The test fails when a listed circle is gone
# (drop it here then), so this list never outlives what it excuses.
PENDING_CIRCLES: list[set[str]] = []

FORBIDDEN = [
    (("generator",), ("bot",), "generator is a library: it never imports bot"),
    (FRONTENDS, ("torch",), "frontends never import torch: the model runs behind bot.service"),
    (FRONTENDS, ("generator", "bot.store"), "frontends import only bot.service: it is the one door"),
]

# Forbidden imports not removed yet, each with the step that removes it; the test fails when one is gone.
PENDING_IMPORTS: set[str] = set()


def within(module: str, packages) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def import_circles(graph) -> list[list[str]]:
    """Each import circle as the chain that closes it: for an import a → b, a chain from b back to a."""
    ours = sorted(m for m in graph.modules if within(m, PACKAGES))
    circles, seen = [], set()
    for a in ours:
        for b in sorted(graph.find_modules_directly_imported_by(a)):
            if within(b, PACKAGES) and graph.chain_exists(importer=b, imported=a):
                chain = [a, *graph.find_shortest_chain(importer=b, imported=a)]
                key = frozenset(chain)
                if key not in seen:
                    seen.add(key)
                    circles.append(chain)
    return circles


def forbidden_imports(graph, importers, forbidden) -> list[str]:
    return sorted(
        f"{m} imports {imported}"
        for m in graph.modules if within(m, importers)
        for imported in graph.find_modules_directly_imported_by(m) if within(imported, forbidden)
    )


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph(*PACKAGES, include_external_packages=True, exclude_type_checking_imports=True,
                             cache_dir=None)


def test_no_import_circle(graph):
    circles = import_circles(graph)
    new = [c for c in circles if set(c) not in PENDING_CIRCLES]
    assert not new, "import circles:\n" + "\n".join(" → ".join(c) for c in new)
    gone = [sorted(p) for p in PENDING_CIRCLES if p not in [set(c) for c in circles]]
    assert not gone, f"no longer a circle, remove from PENDING_CIRCLES: {gone}"


@pytest.mark.parametrize("importers, forbidden, why", FORBIDDEN, ids=[rule[2].split(":")[0] for rule in FORBIDDEN])
def test_forbidden_imports(graph, importers, forbidden, why):
    found = forbidden_imports(graph, importers, forbidden)
    bad = [b for b in found if b not in PENDING_IMPORTS]
    assert not bad, f"{why}:\n" + "\n".join(bad)


def test_pending_imports_are_still_there(graph):
    found = {b for rule in FORBIDDEN for b in forbidden_imports(graph, rule[0], rule[1])}
    gone = sorted(PENDING_IMPORTS - found)
    assert not gone, f"no longer imported, remove from PENDING_IMPORTS: {gone}"


def test_the_checks_see_what_they_forbid():
    """The checks on a made-up graph: a circle through three modules and a frontend importing torch are
    found, the same graph without them passes."""
    g = grimp.ImportGraph()
    for a, b in [("bot.repl.session", "bot.service"), ("bot.service", "generator.generation.loaded"),
                 ("generator.generation.loaded", "generator.generation.engine")]:
        g.add_import(importer=a, imported=b)
    assert import_circles(g) == []
    g.add_import(importer="generator.generation.engine", imported="bot.repl.session")
    assert len(import_circles(g)) == 1
    assert sorted(import_circles(g)[0][:-1]) == sorted(["bot.repl.session", "bot.service",
                                                        "generator.generation.loaded",
                                                        "generator.generation.engine"])
    assert forbidden_imports(g, FRONTENDS, ("torch",)) == []
    g.add_import(importer="bot.discord.cog", imported="torch.nn")
    assert forbidden_imports(g, FRONTENDS, ("torch",)) == ["bot.discord.cog imports torch.nn"]
    assert forbidden_imports(g, ("generator",), ("bot",)) == ["generator.generation.engine imports bot.repl.session"]
    assert forbidden_imports(g, FRONTENDS, ("generator", "bot.store")) == []  # through bot.service: allowed
    g.add_import(importer="bot.repl.commands", imported="bot.store.db")
    assert forbidden_imports(g, FRONTENDS, ("generator", "bot.store")) == ["bot.repl.commands imports bot.store.db"]
