"""A host's capacity as the operator console draws it: for vCPUs, memory and disk, what the
scheduler may place (physical minus reserved, times the allocation ratio) and what its
allocations hold — the same figures placement uses (compute.services.scheduler)."""

from __future__ import annotations

from dataclasses import dataclass

from hosts.capacity import capacity_and_allocated
from hosts.models import Host


@dataclass(frozen=True)
class Gauge:
    resource: str  # vcpus, memory_mb, disk_gb
    used: int
    capacity: int

    @property
    def free(self) -> int:
        return max(self.capacity - self.used, 0)

    @property
    def percent(self) -> int:
        if self.capacity <= 0:
            return 0
        return max(0, min(100, round(100 * self.used / self.capacity)))


def host_gauges(host: Host) -> list[Gauge]:
    return [
        Gauge(resource, allocated, capacity)
        for resource, capacity, allocated in capacity_and_allocated(host)
    ]


ROW_HEIGHT = 64
BAR_X, BAR_WIDTH, BAR_HEIGHT = 190, 380, 12


def capacity_svg(
    zone_key: str, title: str, rows: list[tuple[str, list[Gauge]]], words: dict[str, str]
) -> str:
    """The zone's hosts as an SVG picture (built with lxml, so names are escaped): per host
    its name, then one bar per resource — the used part dark, the free part light — and the
    percentage written beside it, so the picture never speaks by colour alone. `words`
    names the resources in the user's language. The page's table carries the same figures
    (the SVG's aria-describedby)."""
    from lxml import etree

    height = max(len(rows), 1) * ROW_HEIGHT + 8
    svg = etree.Element(
        "svg",
        nsmap={None: "http://www.w3.org/2000/svg"},
        viewBox=f"0 0 640 {height}",
        role="img",
        **{"aria-labelledby": f"svg-title-{zone_key}", "aria-describedby": f"capacity-{zone_key}",
           "class": "capacity-chart"},
    )  # fmt: skip
    etree.SubElement(svg, "title", id=f"svg-title-{zone_key}").text = title
    for index, (name, gauges) in enumerate(rows):
        top = index * ROW_HEIGHT + 14
        etree.SubElement(svg, "text", x="0", y=str(top), **{"class": "host"}).text = name
        for line, gauge in enumerate(gauges):
            y = top + 4 + line * (BAR_HEIGHT + 4)
            label = etree.SubElement(svg, "text", x="20", y=str(y + BAR_HEIGHT - 2))
            label.text = words.get(gauge.resource, gauge.resource)
            etree.SubElement(svg, "rect", x=str(BAR_X), y=str(y), width=str(BAR_WIDTH),
                             height=str(BAR_HEIGHT), **{"class": "free"})  # fmt: skip
            used = round(BAR_WIDTH * gauge.percent / 100)
            etree.SubElement(svg, "rect", x=str(BAR_X), y=str(y), width=str(used),
                             height=str(BAR_HEIGHT), **{"class": "used"})  # fmt: skip
            value = etree.SubElement(svg, "text", x=str(BAR_X + BAR_WIDTH + 8),
                                     y=str(y + BAR_HEIGHT - 2))  # fmt: skip
            value.text = f"{gauge.percent} %"
    return etree.tostring(svg, encoding="unicode")
