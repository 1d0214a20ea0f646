"""Forms of the network pages: networks and subnets, routers, security group rules,
floating IPs. They check the shape of what a page sends and say so in the user's language;
the network services decide (a refusal of theirs is shown by the page)."""

from __future__ import annotations

import ipaddress
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from network.models import SecurityGroupRule

NAME_HELP = _("Up to 64 letters, digits, '.', '_' and '-', starting with a letter or digit.")


def _name(label: Any, *, required: bool = True) -> forms.CharField:
    return forms.CharField(
        label=label,
        max_length=64,
        required=required,
        help_text=NAME_HELP,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )


def choices_of(form: forms.Form, name: str) -> forms.ChoiceField:
    """The form's choice field `name` (its choices are the page's: set per request)."""
    field = form.fields[name]
    assert isinstance(field, forms.ChoiceField)
    return field


def _description() -> forms.CharField:
    return forms.CharField(label=_("Description"), max_length=255, required=False)


class SubnetFields(forms.Form):
    """A subnet's range, gateway, DHCP and DNS servers (used alone, and inside the network
    form where the subnet is optional)."""

    subnet_name = _name(_("Subnet name"), required=False)
    cidr = forms.CharField(
        label=_("Address range (CIDR)"),
        max_length=43,
        required=False,
        help_text=_("An IPv4 range from /16 to /29, for example 192.0.2.0/24."),
        widget=forms.TextInput(attrs={"placeholder": "192.0.2.0/24", "spellcheck": "false"}),
    )
    gateway_ip = forms.CharField(
        label=_("Gateway address"),
        max_length=45,
        required=False,
        help_text=_("Leave empty for the range's first address (192.0.2.1 for 192.0.2.0/24)."),
        widget=forms.TextInput(attrs={"placeholder": "192.0.2.1", "spellcheck": "false"}),
    )
    no_gateway = forms.BooleanField(
        label=_("No gateway (the subnet cannot be joined to a router)"), required=False
    )
    enable_dhcp = forms.BooleanField(
        label=_("Give addresses by DHCP"), required=False, initial=True
    )
    dns_nameservers = forms.CharField(
        label=_("DNS servers"),
        max_length=240,
        required=False,
        help_text=_(
            "Up to 5 IPv4 addresses separated by commas or spaces, for example 198.51.100.53."
        ),
        widget=forms.TextInput(attrs={"placeholder": "198.51.100.53", "spellcheck": "false"}),
    )

    cidr_required = True

    def clean_cidr(self) -> str:
        cidr = self.cleaned_data["cidr"].strip()
        if not cidr:
            if self.cidr_required:
                raise forms.ValidationError(_("Give the subnet's address range."))
            return ""
        try:
            ipaddress.ip_network(cidr)
        except ValueError as exc:
            raise forms.ValidationError(
                _("%(cidr)s is not a network range such as 192.0.2.0/24 (host bits zero).")
                % {"cidr": cidr}
            ) from exc
        return cidr

    def clean_gateway_ip(self) -> str:
        gateway = self.cleaned_data["gateway_ip"].strip()
        if gateway:
            try:
                ipaddress.ip_address(gateway)
            except ValueError as exc:
                raise forms.ValidationError(
                    _("%(address)s is not an IP address.") % {"address": gateway}
                ) from exc
        return gateway

    def clean_dns_nameservers(self) -> list[str]:
        servers = self.cleaned_data["dns_nameservers"].replace(",", " ").split()
        for server in servers:
            try:
                ipaddress.ip_address(server)
            except ValueError as exc:
                raise forms.ValidationError(
                    _("%(address)s is not an IP address.") % {"address": server}
                ) from exc
        if len(servers) > 5:
            raise forms.ValidationError(_("Give at most 5 DNS servers."))
        return servers

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("no_gateway") and data.get("gateway_ip"):
            self.add_error("gateway_ip", _("Leave the gateway empty, or untick 'No gateway'."))
        return data

    def subnet_arguments(self) -> dict[str, Any]:
        """The keyword arguments of `subnet_create` (network, tenant and actor aside)."""
        data = self.cleaned_data
        arguments: dict[str, Any] = {
            "cidr": data["cidr"],
            "name": data["subnet_name"],
            "enable_dhcp": data["enable_dhcp"],
            "dns_nameservers": data["dns_nameservers"],
        }
        if data["no_gateway"]:
            arguments["gateway_ip"] = None
        elif data["gateway_ip"]:
            arguments["gateway_ip"] = data["gateway_ip"]
        return arguments


class NetworkForm(SubnetFields):
    name = _name(_("Name"))
    description = _description()

    cidr_required = False
    field_order = [
        "name", "description", "cidr", "subnet_name", "gateway_ip", "no_gateway",
        "enable_dhcp", "dns_nameservers",
    ]  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["cidr"].help_text = _(
            "Optional: give a range to create the network's first subnet with it, for "
            "example 192.0.2.0/24 (an IPv4 range from /16 to /29)."
        )

    @property
    def network_fields(self) -> list[Any]:
        return [self["name"], self["description"]]

    @property
    def subnet_fields(self) -> list[Any]:
        return [self[name] for name in self.field_order[2:]]


class SubnetForm(SubnetFields):
    field_order = [
        "cidr", "subnet_name", "gateway_ip", "no_gateway", "enable_dhcp", "dns_nameservers"
    ]  # fmt: skip


class RouterForm(forms.Form):
    name = _name(_("Name"))
    external_network = forms.ChoiceField(
        label=_("External network"),
        required=False,
        help_text=_(
            "The router's gateway: the subnets behind it reach outside through it, and it "
            "carries their floating IPs. Choose none for a router between your own subnets."
        ),
    )
    enable_snat = forms.BooleanField(
        label=_("Let the subnets behind the router reach outside (source NAT)"),
        required=False,
        initial=True,
    )

    def __init__(self, *args: Any, externals: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices_of(self, "external_network").choices = external_choices(externals)


def external_choices(externals: list[Any]) -> list[tuple[str, Any]]:
    return [("", _("None (no gateway)")), *((str(n.pk), n.name) for n in externals)]


class GatewayForm(forms.Form):
    external_network = forms.ChoiceField(label=_("External network"), required=False)

    def __init__(self, *args: Any, externals: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices_of(self, "external_network").choices = external_choices(externals)


class InterfaceForm(forms.Form):
    subnet = forms.ChoiceField(
        label=_("Subnet"),
        help_text=_("The router takes the subnet's gateway address on it."),
    )

    def __init__(self, *args: Any, subnets: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices_of(self, "subnet").choices = [
            (str(s.pk), f"{s.network.name} · {s.cidr}" + (f" ({s.name})" if s.name else ""))
            for s in subnets
        ]


class SecurityGroupForm(forms.Form):
    name = _name(_("Name"))
    description = _description()


PROTOCOL_CHOICES = [
    ("tcp", "TCP"),
    ("udp", "UDP"),
    ("icmp", "ICMP"),
    ("", _("Any protocol")),
    ("number", _("Other (IP protocol number)")),
]


class RuleForm(forms.Form):
    direction = forms.ChoiceField(
        label=_("Direction"),
        choices=[
            ("ingress", _("Ingress (traffic coming in to the instances)")),
            ("egress", _("Egress (traffic going out of the instances)")),
        ],
        initial="ingress",
    )
    ethertype = forms.ChoiceField(
        label=_("IP version"),
        choices=SecurityGroupRule.Ethertype.choices,
        initial="IPv4",
        help_text=_("Only IPv4 rules are offered for now."),
    )
    protocol = forms.ChoiceField(label=_("Protocol"), choices=PROTOCOL_CHOICES, initial="tcp")
    protocol_number = forms.IntegerField(
        label=_("IP protocol number"),
        required=False,
        min_value=0,
        max_value=255,
        help_text=_("Only with 'Other': for example 47 for GRE."),
    )
    port_range_min = forms.IntegerField(
        label=_("From port"),
        required=False,
        min_value=0,
        max_value=65535,
        help_text=_(
            "TCP and UDP: the first port (22 for SSH). ICMP: the type (8 for echo). Empty: all."
        ),
    )
    port_range_max = forms.IntegerField(
        label=_("To port"),
        required=False,
        min_value=0,
        max_value=65535,
        help_text=_("TCP and UDP: the last port (the same for one port). ICMP: the code."),
    )
    remote_ip_prefix = forms.CharField(
        label=_("Remote address range (CIDR)"),
        max_length=43,
        required=False,
        help_text=_(
            "Where the traffic comes from (ingress) or goes to (egress), for example "
            "203.0.113.0/24. Leave this and the group empty for anyone (0.0.0.0/0)."
        ),
        widget=forms.TextInput(attrs={"placeholder": "203.0.113.0/24", "spellcheck": "false"}),
    )
    remote_group = forms.ChoiceField(
        label=_("Remote security group"),
        required=False,
        help_text=_("Instead of a range: the instances in this group."),
    )
    description = _description()

    def __init__(self, *args: Any, groups: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices_of(self, "remote_group").choices = [
            ("", _("None")),
            *((str(g.pk), g.name) for g in groups),
        ]

    def clean_remote_ip_prefix(self) -> str:
        prefix = self.cleaned_data["remote_ip_prefix"].strip()
        if prefix:
            try:
                ipaddress.ip_network(prefix, strict=False)
            except ValueError as exc:
                raise forms.ValidationError(
                    _("%(cidr)s is not an address range such as 203.0.113.0/24.") % {"cidr": prefix}
                ) from exc
        return prefix

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        protocol = data.get("protocol")
        if protocol == "number":
            if data.get("protocol_number") is None:
                self.add_error("protocol_number", _("Give the IP protocol number."))
            else:
                data["protocol"] = str(data["protocol_number"])
        low, high = data.get("port_range_min"), data.get("port_range_max")
        if (low is not None or high is not None) and protocol not in ("tcp", "udp", "icmp"):
            self.add_error(
                "port_range_min", _("Ports apply to TCP and UDP only (ICMP: type and code).")
            )
        elif protocol in ("tcp", "udp") and low is not None and high is not None and low > high:
            self.add_error("port_range_max", _("The last port is below the first one."))
        if data.get("remote_ip_prefix") and data.get("remote_group"):
            self.add_error("remote_group", _("Give an address range or a group, not both."))
        return data


class FloatingIPForm(forms.Form):
    network = forms.ChoiceField(
        label=_("External network"),
        help_text=_("The network the address is taken from."),
    )
    description = _description()

    def __init__(self, *args: Any, externals: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices_of(self, "network").choices = [(str(n.pk), n.name) for n in externals]


class AssociateForm(forms.Form):
    port = forms.ChoiceField(
        label=_("Instance address"),
        help_text=_(
            "The floating IP forwards to this address. One of your routers must join its "
            "subnet to the floating IP's network."
        ),
    )

    def __init__(self, *args: Any, targets: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices_of(self, "port").choices = targets
