"""A refusal from a service (`iaas.errors.DomainError`), said in the user's language with
what to do next. The API answers the same refusal with its English message and code; the
portal keeps the code beside its own words, so support can match the two."""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from iaas.errors import DomainError

_MESSAGES: dict[str, Promise] = {
    "quota_exceeded": gettext_lazy(
        "This would take your tenant past its quota. Free some resources, or ask your "
        "administrator to raise the quota."
    ),
    "wrong_state": gettext_lazy(
        "This cannot be done in the resource's current state. Wait for the operation in "
        "progress to finish, then try again."
    ),
    "already_exists": gettext_lazy("That name is already taken in this tenant: choose another."),
    "not_supported_yet": gettext_lazy(
        "This combination is not supported yet. Choose another volume type or source."
    ),
    "no_valid_host": gettext_lazy(
        "No host can take this now. Try a smaller flavor or another zone, or try again later."
    ),
    "unknown_image": gettext_lazy("That image does not exist or is not available to you."),
    "image_not_active": gettext_lazy("That image is not ready yet: wait until it is active."),
    "unknown_flavor": gettext_lazy("That flavor does not exist or is not available to you."),
    "unknown_keypair": gettext_lazy("That keypair does not exist in this tenant."),
    "unknown_network": gettext_lazy("That network does not exist in this tenant."),
    "unknown_security_group": gettext_lazy("That security group does not exist in this tenant."),
    "unknown_volume": gettext_lazy("That volume does not exist in this tenant."),
    "unknown_volume_type": gettext_lazy("That volume type is not available to you."),
    "unknown_zone": gettext_lazy("That zone does not exist or is not allowed for your tenant."),
    "flavor_too_small": gettext_lazy(
        "This flavor's disk is smaller than the image needs: choose a larger flavor."
    ),
    "flavor_disk_smaller_than_image": gettext_lazy(
        "This flavor's disk is smaller than the image needs: choose a larger flavor."
    ),
    "user_data_too_large": gettext_lazy("The user data is too large: keep it under 64 KiB."),
    "invalid_public_key": gettext_lazy(
        "That is not a public key we accept. Paste one line such as 'ssh-ed25519 AAAA… name'."
    ),
    "image_in_use": gettext_lazy("Instances still use this image: delete them first."),
    "image_protected": gettext_lazy("This image is protected: unprotect it before deleting it."),
    "volume_in_use": gettext_lazy("This volume is attached: detach it first."),
    "snapshot_in_use": gettext_lazy("This snapshot is being used: wait for that to finish."),
    "network_in_use": gettext_lazy("Ports still use this network: remove them first."),
    "subnet_in_use": gettext_lazy("Addresses of this subnet are still used: free them first."),
    "router_in_use": gettext_lazy(
        "This router is still in use (interfaces, or floating IPs reaching instances through "
        "it): remove the interfaces or disassociate the floating IPs first."
    ),
    "security_group_in_use": gettext_lazy(
        "Ports still use this security group: change them first."
    ),
    "default_security_group": gettext_lazy("The default security group cannot be deleted."),
    "rule_exists": gettext_lazy("This rule already exists in the group."),
    "no_address_available": gettext_lazy(
        "No free address is left in that range: free an address (for a floating IP, "
        "release one you no longer use or ask your provider)."
    ),
    "ip_in_use": gettext_lazy("That address is already in use: choose another one."),
    "last_admin": gettext_lazy("A tenant keeps at least one administrator: name another first."),
    "already_member": gettext_lazy("This person is already a member of the tenant."),
    "role_too_high": gettext_lazy("You cannot give a role higher than your own."),
    "too_many_tokens": gettext_lazy("You have too many tokens: revoke one you no longer use."),
    "expiry_too_far": gettext_lazy("That expiry is too far away: choose an earlier date."),
    "mfa_required": gettext_lazy(
        "Sign in again with your second factor (your authenticator app's code) first."
    ),
    "invalid_mfa_token": gettext_lazy(
        "That code is not valid. Enter the current code from your authenticator app."
    ),
    "mfa_already_enrolled": gettext_lazy(
        "A second factor is already enrolled: reset it before enrolling a new one."
    ),
    "mfa_not_pending": gettext_lazy("No enrolment is in progress: start again."),
    "mfa_not_enrolled": gettext_lazy("No second factor is enrolled: enrol one first."),
    "image_too_large": gettext_lazy("The file is larger than this cloud accepts for an image."),
    "image_refused": gettext_lazy(
        "The file is not an image we can boot: upload a qcow2 or raw disk image."
    ),
    "empty_upload": gettext_lazy("The file is empty: choose the image file again."),
    "tenant_suspended": gettext_lazy("This tenant is suspended: contact your provider."),
    # Storage pages (images, volumes, snapshots, exports).
    "public_image": gettext_lazy("Public images are managed by the operators."),
    "image_saving": gettext_lazy(
        "The image's file is being uploaded: delete the image once the upload ends."
    ),
    "image_not_queued": gettext_lazy(
        "This image already has its file, or its file was refused: create a new image to "
        "upload another file."
    ),
    "incomplete_upload": gettext_lazy("The file did not arrive whole: send it again."),
    "upload_expired": gettext_lazy(
        "The upload stalled for too long and was abandoned: send the file again."
    ),
    "residency_unsatisfiable": gettext_lazy(
        "No storage in a zone your tenant's residency policy allows can take this: ask your "
        "provider."
    ),
    "unknown_snapshot": gettext_lazy("That volume snapshot does not exist in this tenant."),
    "volume_cannot_shrink": gettext_lazy(
        "A volume only grows: enter a size larger than its current one."
    ),
    "snapshot_in_progress": gettext_lazy(
        "A snapshot of this volume is being taken: wait for it to finish."
    ),
    "export_not_available": gettext_lazy(
        "This export cannot be downloaded now: wait until it is available, or export again."
    ),
    "file_missing": gettext_lazy(
        "The file is missing from its store: tell your provider's support."
    ),
    "no_export_store": gettext_lazy(
        "This volume's zone has no storage for exports: ask your provider."
    ),
    "volume_smaller_than_image": gettext_lazy(
        "The volume is smaller than the image needs: choose a larger size."
    ),
    "volume_smaller_than_snapshot": gettext_lazy(
        "The volume is smaller than the snapshot: choose at least the snapshot's size."
    ),
    "snapshot_not_available": gettext_lazy(
        "That snapshot is not available: wait until it is, or choose another."
    ),
    "volume_key_shredded": gettext_lazy(
        "This volume's key was destroyed: its data can no longer be read. Delete it."
    ),
    "encryption_unavailable": gettext_lazy(
        "Encrypted volumes cannot be made now: the operators have been told. Try again later."
    ),
    # The network pages' refusals (network/services/*).
    "operator_network": gettext_lazy(
        "This network belongs to the operator: you can use it, not change or delete it."
    ),
    "invalid_name": gettext_lazy(
        "That name is not valid: use 1 to 64 letters, digits, '.', '_' and '-', starting "
        "with a letter or digit."
    ),
    "invalid_description": gettext_lazy(
        "The description is too long or holds control characters: keep it under 255 characters."
    ),
    "invalid_cidr": gettext_lazy(
        "That address range is not valid: give an IPv4 range from /16 to /29 with its host "
        "bits zero, such as 192.0.2.0/24."
    ),
    "ip_version_not_supported": gettext_lazy("Only IPv4 ranges are offered for now."),
    "invalid_gateway": gettext_lazy(
        "The gateway must be an address inside the subnet's range (not its first or last)."
    ),
    "invalid_allocation_pool": gettext_lazy(
        "The allocation pools are not valid: they must lie in the range, without the gateway, "
        "and not overlap."
    ),
    "invalid_dns": gettext_lazy("Give at most 5 DNS servers."),
    "subnet_overlap": gettext_lazy(
        "That range overlaps a subnet already on this network (or on this router): choose "
        "another range."
    ),
    "not_external_network": gettext_lazy(
        "That network is not an external network: choose one of the external networks."
    ),
    "no_gateway": gettext_lazy(
        "This subnet has no gateway address, so a router cannot join it. Create a subnet with "
        "a gateway."
    ),
    "subnet_has_router": gettext_lazy(
        "This subnet is already joined to a router: remove that interface first."
    ),
    "no_such_interface": gettext_lazy("The router has no interface on that subnet."),
    "no_route": gettext_lazy(
        "No router of yours joins this address's subnet to the floating IP's network: add the "
        "subnet to a router whose gateway is on that network, then try again."
    ),
    "port_has_floating_ip": gettext_lazy(
        "This address already has a floating IP: disassociate that one first."
    ),
    "invalid_port": gettext_lazy("A floating IP can only point to one of your instances' ports."),
    "invalid_subnet": gettext_lazy("That subnet is not one of yours."),
    "invalid_rule": gettext_lazy(
        "This rule is not valid. Check that ports go with TCP, UDP or ICMP, that the first "
        "port is not above the last, that the range is an IPv4 range, and that you gave a "
        "range or a group, not both."
    ),
    "invalid_mtu": gettext_lazy("The MTU must be between 576 and 9000."),
}


def message_for(error: DomainError) -> str:
    """The user's words for `error`: a sentence in their language for a known code, else
    the service's own (English) message, which always says what went wrong."""
    known = _MESSAGES.get(error.code)
    if known is not None:
        return str(known)
    return _("The request was refused: %(message)s") % {"message": error.message}


def known_codes() -> set[str]:
    return set(_MESSAGES)
