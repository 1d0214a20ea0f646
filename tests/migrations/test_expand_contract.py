"""Migrations since the previous release only expand the schema (docs/upgrades.md).

A rolling upgrade migrates the database while the previous release's workers and API still run
on it. Those processes read and write with the previous release's models, so a migration that
removes or renames a column or table they use, or adds a NOT NULL column they do not fill,
breaks them in the middle of the upgrade. Such "contract" steps wait for the release after the
one that stopped using the column, and are listed in CONTRACTS with that reason.

The previous release is the newest one in pyproject.toml (`[tool.andromede] releases`); its
migrations are the files its commit holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import migrations, models
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations.base import Operation
from django.db.migrations.state import ProjectState
from django.db.models.fields import NOT_PROVIDED

from tests.support.releases import Release, files_at, previous_release

#: (app, migration name) → why it may contract: which release stopped using what it removes.
#: Empty: nothing contracts yet.
CONTRACTS: dict[tuple[str, str], str] = {}

#: Operations that take something away from the previous release's code.
REMOVALS = (
    migrations.DeleteModel,
    migrations.RemoveField,
    migrations.RenameField,
    migrations.RenameModel,
    migrations.AlterModelTable,
)


@dataclass(frozen=True)
class Finding:
    migration: tuple[str, str]
    problem: str

    def __str__(self) -> str:
        app, name = self.migration
        return f"{app}.{name}: {self.problem}"


def _writes_without(field: models.Field) -> bool:
    """Whether a row inserted without this column is refused: NOT NULL and no database
    default (Django drops a Python `default` from the column once it has filled the rows)."""
    return (
        not field.many_to_many
        and not field.null
        and field.db_default is NOT_PROVIDED
        and not field.generated
    )


def contract_steps(
    migration: migrations.Migration, before: ProjectState, new_models: set[tuple[str, str]]
) -> list[str]:
    """What in `migration` breaks the previous release's code. `before` is the project state
    just before it; `new_models` the (app, model) pairs created since the previous release
    (the previous release never reads or writes those)."""
    app = migration.app_label
    problems: list[str] = []
    for operation in migration.operations:
        model = getattr(operation, "model_name", None) or getattr(operation, "name", "")
        if (app, str(model).lower()) in new_models:
            continue
        if isinstance(operation, REMOVALS):
            problems.append(f"{operation.describe()} (the previous release still uses it)")
        elif isinstance(operation, migrations.AddField) and _writes_without(operation.field):
            problems.append(
                f"{operation.describe()} is NOT NULL without db_default: the previous "
                "release's inserts would be refused (give it db_default= or null=True)"
            )
        elif isinstance(operation, migrations.AlterField):
            old = before.models[app, operation.model_name.lower()].fields.get(operation.name)
            if old is not None and old.null and _writes_without(operation.field):
                problems.append(
                    f"{operation.describe()} makes the column NOT NULL without db_default"
                )
    return problems


def new_migrations(release: Release, loader: MigrationLoader) -> list[tuple[str, str]]:
    """The project's migrations that the release's commit does not hold (Django's own apps'
    migrations live in the virtualenv and never count)."""
    at_release = {path for path in files_at(release) if "/migrations/" in path}
    added = []
    for key, migration in loader.disk_migrations.items():
        path = type(migration).__module__.replace(".", "/") + ".py"
        if not path.startswith("django/") and path not in at_release:
            added.append(key)
    return sorted(added)


def findings(release: Release) -> list[Finding]:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    added = new_migrations(release, loader)
    new_models = {
        (app, operation.name.lower())
        for app, name in added
        for operation in loader.graph.nodes[app, name].operations
        if isinstance(operation, migrations.CreateModel)
    }
    found = []
    for key in added:
        if key in CONTRACTS:
            continue
        before = loader.project_state(key, at_end=False)
        steps = contract_steps(loader.graph.nodes[key], before, new_models)
        found += [Finding(key, problem) for problem in steps]
    return found


def test_the_migrations_since_the_previous_release_only_expand():
    release = previous_release()
    problems = findings(release)
    assert not problems, (
        f"migrations since release {release.version} ({release.commit[:12]}) would break its "
        "workers during a rolling upgrade (docs/upgrades.md):\n"
        + "\n".join(f"  {p}" for p in problems)
    )


def test_every_listed_contract_is_a_migration_that_exists():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    assert set(CONTRACTS) <= set(loader.disk_migrations)


def _migration(app: str, *operations: Operation) -> migrations.Migration:
    """A migration made in memory, never written to disk."""
    return type("Migration", (migrations.Migration,), {"operations": list(operations)})(
        "0099_probe", app
    )


def test_the_check_names_each_kind_of_contract_step():
    """The check can fail: each step that breaks old code is named, each safe one is not."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    state = loader.project_state()
    unsafe = _migration(
        "hosts",
        migrations.RemoveField("host", "site"),
        migrations.RenameField("host", "arch", "architecture"),
        migrations.DeleteModel("orphanreport"),
        migrations.AddField("host", "draining", models.BooleanField(default=False)),
        migrations.AlterField("host", "name", models.CharField(max_length=64)),
    )
    problems = contract_steps(unsafe, state, set())
    assert len(problems) == 4, problems  # name was NOT NULL already: altering it is no contract
    assert any("NOT NULL without db_default" in p for p in problems)
    safe = _migration(
        "hosts",
        migrations.AddField("host", "drain_a", models.BooleanField(db_default=False)),
        migrations.AddField("host", "drain_b", models.BooleanField(null=True)),
        migrations.AddIndex("host", models.Index(fields=["name"], name="probe_idx")),
        migrations.RemoveField("widget", "colour"),
    )
    assert contract_steps(safe, state, {("hosts", "widget")}) == []


def test_migrations_of_the_release_are_not_counted_as_new():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    added = new_migrations(previous_release(), loader)
    assert ("compute", "0017_instance_volume_task_states") not in added
    assert ("iaas", "0005_audit_verification") not in added
    assert all(not app.startswith(("auth", "contenttypes")) for app, _ in added)
