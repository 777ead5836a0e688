"""The layering of docs/architecture.md, as the import contracts in pyproject.toml check it (`make test` runs
them with lint-imports): the code keeps it, and an import against it, or a circle among automation's modules,
breaks a contract."""

import pytest
from importlinter.application import use_cases
from importlinter.application.app_config import settings
from importlinter.configuration import configure

from tradingai.settings.base import BASE_DIR


def broken_contracts(*extra_imports: tuple[str, str]) -> list[str]:
    """The names of the contracts broken by the code as it is plus `extra_imports` (importer, imported)."""
    configure()
    use_cases._register_built_in_contract_types()  # what the lint-imports command does first
    builder = settings.GRAPH_BUILDER

    class WithExtraImports:
        def build(self, **options):
            graph = builder.build(**options)
            for importer, imported in extra_imports:
                graph.add_import(importer=importer, imported=imported, line_number=1, line_contents="probe")
            return graph

    settings.configure(GRAPH_BUILDER=WithExtraImports())
    try:
        options = use_cases.read_user_options(str(BASE_DIR / "pyproject.toml"))
        report = use_cases.create_report(options, cache_dir=None)
    finally:
        settings.configure(GRAPH_BUILDER=builder)
    return [contract.name for contract, check in report.get_contracts_and_checks() if not check.kept]


def test_the_code_keeps_the_layering():
    assert broken_contracts() == []


@pytest.mark.parametrize(
    "importer, imported",
    [
        ("learning.policy", "automation.models"),  # the policy once took Bot
        ("trades.monitor", "learning.resolution"),  # the monitor once resolved the analysis itself
        ("accounts.views", "automation.models"),
        ("core.pages", "automation.models"),  # the list pages' filter once took Bot
        ("market.sources", "trades.models"),
        ("trades.monitor", "notifications.services"),  # trades tells notifications by signals instead
        ("notifications.services", "automation.models"),
    ],
)
def test_an_import_up_the_layers_breaks_the_build(importer, imported):
    assert broken_contracts((importer, imported)) == [
        "Apps in one direction: tradingai > automation > notifications > learning > trades > accounts"
        " > market > core"
    ]


def test_a_circle_among_automations_modules_breaks_the_build():
    # services imported the cycle and the tasks inside functions while the cycle imported services.
    assert broken_contracts(("automation.services", "automation.tasks")) == [
        "No circles among automation's modules"
    ]
