"""`manage.py zone_add NAME --region fr-par --site … --city Paris --country FR
[--jurisdiction FR] [--certification SecNumCloud …]`"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from hosts.services.zones import zone_create
from iaas.audit import Actor
from iaas.errors import DomainError


class Command(BaseCommand):
    help = "Declare a zone (a datacenter) and its jurisdiction."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name")
        parser.add_argument("--region", required=True)
        parser.add_argument("--site", required=True)
        parser.add_argument("--city", required=True)
        parser.add_argument("--country", required=True)
        parser.add_argument("--jurisdiction", help="defaults to the country")
        parser.add_argument("--certification", action="append", default=[])

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            zone = zone_create(
                actor=Actor.system("manage.py zone_add"),
                region=options["region"],
                name=options["name"],
                site=options["site"],
                city=options["city"],
                country=options["country"],
                jurisdiction=options["jurisdiction"] or options["country"],
                certifications=options["certification"],
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"zone {zone.name} ({zone.jurisdiction}) created")
