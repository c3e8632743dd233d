"""The AWS emulator of the test bed: moto 5.2.5 in server mode, made honest.

Owns everything between a test's HTTP request and moto's backends:

* ``python testbed/emulator.py --port N`` serves on 127.0.0.1 only (port 0 picks
  a free port) and prints ``READY http://127.0.0.1:PORT`` once it listens.
* Patches to moto, applied before serving, so that its known gaps cannot make
  a test pass (see shared/notes/testbed.md):
    - EC2 DescribeNatGateways honours ``tag:<key>``, ``tag-key``, ``tag-value``
      filters (AWS wildcards ``*`` and ``?``), rejects unknown filters, and
      paginates (``MaxResults`` 5..1000, opaque ``NextToken``).
    - Regional NAT gateways (``AvailabilityMode=regional``, which moto lacks):
      CreateNatGateway with ``VpcId`` and ``AvailabilityZoneAddresses`` makes a
      gateway with no subnet whose addresses carry their zone, as on AWS.
    - A NAT gateway carries several public addresses as on AWS:
      CreateNatGateway ``SecondaryAllocationIds`` and AssociateNatGatewayAddress.
      Unknown ids on DeleteNatGateway answer ``NatGatewayNotFound``.
    - AuthorizeSecurityGroupIngress returns the rules of every IpPermissions
      item, and is atomic (a failing item leaves the group untouched).
    - DescribeSecurityGroupRules paginates as AWS documents it: ``MaxResults``
      5..1000 (without it, every rule in one answer), an opaque ``NextToken``
      (an invalid one answers ``InvalidPaginationToken``), rules in creation
      order, filters applied before paging. A security group rule reads its
      own tags directly instead of scanning every tag of the region, so
      thousands of tagged rules list in well under a second (stock moto is
      quadratic: 2,500 tagged rules take over a minute per listing).
    - DescribeRegions honours ``AllRegions``, ``RegionNames`` and the
      ``region-name`` / ``endpoint`` / ``opt-in-status`` filters, and lists
      only the commercial partition.
    - Managed prefix lists behave as on AWS: ModifyManagedPrefixList with a
      stale ``CurrentVersion`` fails with ``PrefixListVersionMismatch``
      (nothing changes), ``MaxEntries`` is enforced
      (``PrefixListMaxEntriesExceeded``) and changeable (a resize is its own
      call: combined with entry changes it is ``InvalidParameterCombination``;
      below the entry count it is ``InvalidParameterValue``), a modify
      without ``PrefixListName`` keeps the name, an unknown id answers
      ``InvalidPrefixListID.NotFound``, and more than 100 entries in one
      request is refused.
    - A request signed for a region that is not enabled for the account
      (unknown to moto, another partition, or an opt-in region not opted in;
      ``--opt-in`` enables some) answers HTTP 401 ``AuthFailure`` naming the
      region, not an HTML 500.
* Cheaper per request, same answers: moto's host -> service lookup and its
  per-request ``inspect.getmembers`` of the response class are done once, NAT
  gateways read their tags by id, connections are kept alive between requests
  as on AWS (werkzeug closes every connection after one response), and the
  listen backlog is 4096 (werkzeug's 128 overflows when a client opens 170
  connections at once).
* A repeated EC2 read (Describe*/Get*, byte-identical request, same access key
  and region) is answered with moto's earlier answer while no other request has
  reached moto in between (ReadCache): exact, and it spares moto's ~1-3 ms of
  CPU per request when a client asks 170 accounts x regions at once.
* A WSGI middleware in front of moto: request counters and fault injection
  under ``/_testbed/``, and ``POST /moto-api/reset`` also clearing both.
  Fault modes: ``error`` (an AWS error in the request's protocol), ``delay``
  (hold ``delay_ms``, then serve it), ``reset`` (TCP RST, no response) and
  ``drop`` (read the request, never answer: hold it until the client closes
  the connection or ``delay_ms`` (default 120 s) passes, then close the
  connection without a response; the request never reaches moto;
  ``GET /_testbed/held`` says how many are held right now).
  A rule may name an ``account`` (the one moto acts in for the request's
  access key, e.g. credentials from AssumeRole into that account); counters
  carry it too.

REST services without an ``Action`` parameter (S3, CloudFront) are counted and
matched by their HTTP method (``GET``, ``PUT``, ...) as the action.
"""

from __future__ import annotations

import argparse
import base64
import functools
import itertools
import json
import os
import re
import select
import socket
import struct
import sys
import threading
import time
import uuid
from http import HTTPStatus
from io import BytesIO
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

import moto.core.responses
from moto.core.responses import ActionResult
from moto.core.utils import method_names_from_class, utcnow
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.availability_zones_and_regions import RegionsAndZonesBackend
from moto.ec2.models.managed_prefixes import ManagedPrefixList, ManagedPrefixListBackend
from moto.ec2.models.nat_gateways import NatGateway, NatGatewayBackend
from moto.ec2.models.security_groups import SecurityGroupRule
from moto.ec2.responses.availability_zones_and_regions import AvailabilityZonesAndRegions
from moto.ec2.responses.nat_gateways import NatGateways
from moto.ec2.responses.security_groups import SecurityGroups
from moto.ec2.responses.vpcs import VPCs
from moto.ec2.utils import (
    EC2_PREFIX_TO_RESOURCE,
    add_tag_specification,
    get_prefix,
    random_eip_association_id,
    random_nat_gateway_id,
    random_private_ip,
)
from moto.core import DEFAULT_ACCOUNT_ID
from moto.iam.models import get_account_id_from
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import ThreadedWSGIServer

HOST = "127.0.0.1"


# --------------------------------------------------------------------------
# AWS wildcard matching (`*` = any run of characters, `?` = one character,
# a backslash escapes the next character). Unlike fnmatch, `[` is literal.
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def wildcard_regex(pattern: str) -> re.Pattern[str]:
    """Compile an AWS filter value into an anchored regular expression
    (remembered: a filter is matched against every gateway of every request)."""
    parts: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            parts.append(re.escape(next(chars, "\\")))
        elif ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


def matches_any(patterns: Iterable[str], values: Iterable[str]) -> bool:
    """True when any value fully matches any of the wildcard patterns."""
    regexes = [wildcard_regex(p) for p in patterns]
    return any(r.fullmatch(v) for r in regexes for v in values)


def invalid_filter(name: str) -> EC2ClientError:
    return EC2ClientError("InvalidParameterValue", f"The filter '{name}' is invalid")


# --------------------------------------------------------------------------
# NAT gateways: tag filters, pagination, several addresses per gateway.
# --------------------------------------------------------------------------

NAT_ATTRIBUTE_FILTERS = {
    "nat-gateway-id": "id",
    "state": "state",
    "subnet-id": "subnet_id",
    "vpc-id": "vpc_id",
}
NAT_PAGE_MIN, NAT_PAGE_MAX = 5, 1000
# Switched off through POST /_testbed/settings to behave like stock moto, which
# ignores tag filters on DescribeNatGateways: tests use it to prove a client
# does not depend on the server filtering by tag.
# `read_cache` off makes every read reach moto (see ReadCache).
SETTINGS = {"nat_gateway_tag_filters": True, "read_cache": True}
SETTINGS_DEFAULTS = dict(SETTINGS)


def nat_filter_matches(gateway: NatGateway, name: str, values: list[str]) -> bool:
    """One EC2 filter against one gateway; values are OR-ed, as on AWS."""
    tags = {t["key"]: t["value"] for t in gateway.get_tags()}
    if name.startswith("tag:"):
        key = name[len("tag:"):]
        return key in tags and matches_any(values, [tags[key]])
    if name == "tag-key":
        return matches_any(values, tags.keys())
    if name == "tag-value":
        return matches_any(values, tags.values())
    if name in NAT_ATTRIBUTE_FILTERS:
        return getattr(gateway, NAT_ATTRIBUTE_FILTERS[name]) in values
    raise invalid_filter(name)


def describe_nat_gateways_model(
    self: NatGatewayBackend, filters: dict[str, list[str]] | None, nat_gateway_ids: list[str] | None
) -> list[NatGateway]:
    """Replaces NatGatewayBackend.describe_nat_gateways: every filter is applied (AND)."""
    gateways = list(self.nat_gateways.values())
    if nat_gateway_ids:
        gateways = [g for g in gateways if g.id in nat_gateway_ids]
    for name, values in (filters or {}).items():
        if name.startswith("tag") and not SETTINGS["nat_gateway_tag_filters"]:
            continue
        gateways = [g for g in gateways if nat_filter_matches(g, name, values)]
    return gateways


def paginate_nat_gateways(
    backend: NatGatewayBackend, gateways: list[NatGateway], max_results: Any, next_token: str | None
) -> tuple[list[NatGateway], str | None]:
    """One page of gateways in creation order. The token names the last gateway
    returned, so a page never repeats or skips one, even if states change."""
    if max_results is None and not next_token:
        return gateways, None
    size = NAT_PAGE_MAX if max_results is None else int(max_results)
    if not NAT_PAGE_MIN <= size <= NAT_PAGE_MAX:
        raise EC2ClientError(
            "InvalidParameterValue",
            f"Value ( {size} ) for parameter maxResults is invalid. "
            f"Expecting a value between {NAT_PAGE_MIN} and {NAT_PAGE_MAX}.",
        )
    order = {gid: n for n, gid in enumerate(backend.nat_gateways)}
    if next_token:
        after = order.get(token_gateway_id(next_token))
        if after is None:
            raise EC2ClientError("InvalidPaginationToken", f"Invalid pagination token: {next_token}")
        gateways = [g for g in gateways if order[g.id] > after]
    page = gateways[:size]
    more = len(gateways) > size
    return page, (gateway_token(page[-1].id) if more else None)


TOKEN_PREFIX = "testbed-after:"


def gateway_token(gateway_id: str) -> str:
    """An opaque NextToken (not an id a client could pass by mistake)."""
    return base64.urlsafe_b64encode((TOKEN_PREFIX + gateway_id).encode()).decode()


def token_gateway_id(token: str) -> str | None:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return text[len(TOKEN_PREFIX):] if text.startswith(TOKEN_PREFIX) else None


def describe_nat_gateways_response(self: NatGateways) -> ActionResult:
    """Replaces the DescribeNatGateways handler: filters plus real pagination."""
    gateways = self.ec2_backend.describe_nat_gateways(
        self._filters_from_querystring(), self._get_param("NatGatewayIds", [])
    )
    page, token = paginate_nat_gateways(
        self.ec2_backend, gateways, self._get_param("MaxResults"), self._get_param("NextToken")
    )
    result: dict[str, Any] = {"NatGateways": page}
    if token:
        result["NextToken"] = token
    return ActionResult(result)


def nat_gateway_or_fail(backend: NatGatewayBackend, nat_gateway_id: str) -> NatGateway:
    gateway = backend.nat_gateways.get(nat_gateway_id)
    if gateway is None:
        raise EC2ClientError("NatGatewayNotFound", f"The Nat Gateway {nat_gateway_id} was not found")
    return gateway


def check_allocations_free(backend: Any, allocation_ids: list[str]) -> None:
    """Fail before any change if an allocation is unknown or already in use."""
    for eip in backend.address_by_allocation(allocation_ids):
        if eip.association_id or eip.eni or eip.instance:
            raise EC2ClientError(
                "Resource.AlreadyAssociated",
                f"Elastic IP address [{eip.allocation_id}] is already associated",
            )


def attach_secondary_address(backend: Any, gateway: NatGateway, allocation_id: str) -> dict[str, Any]:
    """Give the gateway one more public address, with its own private address."""
    eni = gateway._eni
    primary_public_ip = eni.public_ip
    eip = backend.associate_address(eni=eni, allocation_id=allocation_id)
    eni.public_ip = primary_public_ip  # moto's ENI keeps one public IP: the primary
    address = {
        "allocationId": allocation_id,
        "publicIp": eip.public_ip,
        "associationId": eip.association_id,
        "networkInterfaceId": eni.id,
        "privateIp": random_private_ip(backend.get_subnet(gateway.subnet_id).cidr_block),
        "isPrimary": False,
        "status": "succeeded",
    }
    gateway.address_set.append(address)
    return address


_moto_create_nat_gateway = NatGatewayBackend.create_nat_gateway


def create_nat_gateway_model(
    self: NatGatewayBackend,
    subnet_id: str,
    allocation_id: str,
    tags: dict[str, str] | None = None,
    connectivity_type: str = "public",
    secondary_allocation_ids: list[str] | None = None,
) -> NatGateway:
    """Wraps NatGatewayBackend.create_nat_gateway: adds secondary addresses."""
    secondary = list(secondary_allocation_ids or [])
    if secondary:
        check_allocations_free(self, secondary)
    gateway = _moto_create_nat_gateway(self, subnet_id, allocation_id, tags, connectivity_type)
    gateway.address_set[0].update(isPrimary=True, status="succeeded")
    for extra in secondary:
        attach_secondary_address(self, gateway, extra)
    return gateway


def regional_nat_gateway(
    backend: Any, vpc_id: str, zones: list[tuple[str, list[str]]], tags: dict[str, str]
) -> NatGateway:
    """A regional NAT gateway (availability mode ``regional``): it belongs to a
    VPC, not a subnet, and its public addresses are spread over zones. Built
    without NatGateway.__init__, which needs a subnet for its one ENI."""
    backend.get_vpc(vpc_id)  # InvalidVpcID.NotFound as on AWS
    allocation_ids = [a for _, ids in zones for a in ids]
    if not allocation_ids:
        raise EC2ClientError("MissingParameter", "A regional NAT gateway needs AvailabilityZoneAddresses")
    by_id = {e.allocation_id: e for e in backend.address_by_allocation(allocation_ids)}
    check_allocations_free(backend, allocation_ids)
    gateway = NatGateway.__new__(NatGateway)
    gateway.id = random_nat_gateway_id()
    gateway.subnet_id = None
    gateway.vpc_id = vpc_id
    gateway.state = "available"
    gateway.private_ip = None
    gateway.connectivity_type = "public"
    gateway.availability_mode = "regional"
    gateway._created_at = utcnow()
    gateway.ec2_backend = backend
    gateway._eni = None
    gateway.address_set = []
    for zone, ids in zones:
        for allocation_id in ids:
            eip = by_id[allocation_id]
            eip.association_id = random_eip_association_id()
            gateway.address_set.append({
                "allocationId": allocation_id,
                "publicIp": eip.public_ip,
                "associationId": eip.association_id,
                "availabilityZone": zone,
                "isPrimary": not gateway.address_set,
                "status": "succeeded",
            })
    gateway.add_tags(tags)
    return gateway


# moto's gateways are all zonal; AWS says so when asked.
NatGateway.availability_mode = "zonal"


def create_nat_gateway_response(self: NatGateways) -> ActionResult:
    """Replaces the CreateNatGateway handler to pass SecondaryAllocationIds on,
    and to make regional gateways."""
    if self._get_param("AvailabilityMode") == "regional":
        zones = [
            (z.get("AvailabilityZone") or z.get("AvailabilityZoneId") or "", list(z.get("AllocationIds", [])))
            for z in self._get_param("AvailabilityZoneAddresses", [])
        ]
        tags = add_tag_specification(self._get_param("TagSpecifications", []))
        gateway = regional_nat_gateway(self.ec2_backend, self._get_param("VpcId"), zones, tags)
        self.ec2_backend.nat_gateways[gateway.id] = gateway
        return ActionResult({"NatGateway": gateway})
    gateway = self.ec2_backend.create_nat_gateway(
        subnet_id=self._get_param("SubnetId"),
        allocation_id=self._get_param("AllocationId"),
        tags=add_tag_specification(self._get_param("TagSpecifications", [])),
        connectivity_type=self._get_param("ConnectivityType"),
        secondary_allocation_ids=self._get_param("SecondaryAllocationIds", []),
    )
    return ActionResult({"NatGateway": gateway})


def associate_nat_gateway_address_response(self: NatGateways) -> ActionResult:
    """AssociateNatGatewayAddress, which moto lacks."""
    gateway = nat_gateway_or_fail(self.ec2_backend, self._get_param("NatGatewayId"))
    allocation_ids = self._get_param("AllocationIds", [])
    check_allocations_free(self.ec2_backend, allocation_ids)
    added = [attach_secondary_address(self.ec2_backend, gateway, a) for a in allocation_ids]
    return ActionResult({"NatGatewayId": gateway.id, "NatGatewayAddresses": added})


def delete_nat_gateway_model(self: NatGatewayBackend, nat_gateway_id: str) -> NatGateway:
    """Replaces NatGatewayBackend.delete_nat_gateway: unknown id is an AWS error, not a 500."""
    gateway = nat_gateway_or_fail(self, nat_gateway_id)
    gateway.state = "deleted"
    return gateway


# --------------------------------------------------------------------------
# Security groups: AuthorizeSecurityGroupIngress over several IpPermissions.
# --------------------------------------------------------------------------


def authorize_security_group_ingress_response(self: SecurityGroups) -> ActionResult:
    """Replaces the handler: all items' rules are returned; any failure rolls back."""
    self.error_on_dryrun()
    backend = self.ec2_backend
    snapshots: dict[int, tuple[Any, list[Any]]] = {}
    added: list[Any] = []
    try:
        for kwargs in self._process_rules_from_querystring():
            group = backend.get_security_group_by_name_or_id(kwargs["group_name_or_id"], None)
            if group is not None:
                snapshots.setdefault(id(group), (group, list(group.ingress_rules)))
            rules, _ = backend.authorize_security_group_ingress(**kwargs)
            added.extend(rules)
    except Exception:
        for group, rules_before in snapshots.values():
            dropped = [r for r in group.ingress_rules if r not in rules_before]
            group.ingress_rules[:] = rules_before
            for rule in dropped:
                backend.tags.pop(rule.id, None)
        raise
    return ActionResult({"Return": True, "SecurityGroupRules": added})


# --------------------------------------------------------------------------
# Security group rules: their own tags, and DescribeSecurityGroupRules pages.
# --------------------------------------------------------------------------

RULE_PAGE_MIN, RULE_PAGE_MAX = 5, 1000
RULE_TOKEN_PREFIX = "testbed-sgr-after:"
# Every rule made gets the next number: pages follow creation order, and a
# token names a number, not a rule, so revoking rules between two pages (a
# concurrent sweep) neither repeats nor skips any.
_rule_numbers = itertools.count(1)
_moto_rule_init = SecurityGroupRule.__init__


def security_group_rule_init(self: SecurityGroupRule, *args: Any, **kwargs: Any) -> None:
    """Wraps SecurityGroupRule.__init__: numbers the rule in creation order."""
    self.testbed_number = next(_rule_numbers)
    _moto_rule_init(self, *args, **kwargs)


def own_tags(self: Any) -> list[dict[str, str]]:
    """Replaces get_tags of security group rules and NAT gateways: the
    resource's own tags, looked up by id (moto's TaggedEC2Resource.get_tags
    runs describe_tags, which compiles a regex and scans every tag of the
    region for each resource: quadratic in listings), in the shape moto's
    describe_tags gives them."""
    if not self.id:
        return []
    tags = self.ec2_backend.tags.get(self.id) or {}
    kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(self.id), "")
    return [{"resource_id": self.id, "key": k, "value": v, "resource_type": kind} for k, v in tags.items()]


def rule_number(rule: SecurityGroupRule) -> int:
    return getattr(rule, "testbed_number", 0)


def rule_token(number: int) -> str:
    """An opaque NextToken naming the last rule number a page returned."""
    return base64.urlsafe_b64encode(f"{RULE_TOKEN_PREFIX}{number}".encode()).decode()


def token_rule_number(token: str) -> int | None:
    try:
        text = base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    if not text.startswith(RULE_TOKEN_PREFIX):
        return None
    digits = text[len(RULE_TOKEN_PREFIX):]
    return int(digits) if digits.isdigit() else None


def paginate_rules(
    rules: list[SecurityGroupRule], max_results: Any, next_token: str | None
) -> tuple[list[SecurityGroupRule], str | None]:
    """One page of `rules` (already filtered), in creation order. Without
    MaxResults, everything after the token in one page, as AWS documents."""
    if max_results is not None:
        size = int(max_results)
        if not RULE_PAGE_MIN <= size <= RULE_PAGE_MAX:
            raise EC2ClientError(
                "InvalidParameterValue",
                f"Value ( {size} ) for parameter maxResults is invalid. "
                f"Expecting a value between {RULE_PAGE_MIN} and {RULE_PAGE_MAX}.",
            )
    rules = sorted(rules, key=rule_number)
    if next_token:
        after = token_rule_number(next_token)
        if after is None:
            raise EC2ClientError(
                "InvalidPaginationToken", "The specified pagination token is not valid or is expired."
            )
        rules = [r for r in rules if rule_number(r) > after]
    if max_results is None:
        return rules, None
    page = rules[:size]
    return page, (rule_token(rule_number(page[-1])) if len(rules) > size else None)


def describe_security_group_rules_response(self: SecurityGroups) -> ActionResult:
    """Replaces the DescribeSecurityGroupRules handler: filters, then one page."""
    self.error_on_dryrun()
    rules = self.ec2_backend.describe_security_group_rules(
        self._get_param("SecurityGroupRuleIds", []), self._filters_from_querystring()
    )
    page, token = paginate_rules(rules, self._get_param("MaxResults"), self._get_param("NextToken"))
    result: dict[str, Any] = {"SecurityGroupRules": page}
    if token:
        result["NextToken"] = token
    return ActionResult(result)
# Managed prefix lists: optimistic versions, MaxEntries, names kept.
# --------------------------------------------------------------------------

PREFIX_LIST_ENTRIES_PER_REQUEST = 100


def prefix_list_or_fail(backend: ManagedPrefixListBackend, prefix_list_id: str | None) -> ManagedPrefixList:
    pl = backend.managed_prefix_lists.get(prefix_list_id or "")
    if pl is None or pl.state == "delete-complete":
        raise EC2ClientError(
            "InvalidPrefixListID.NotFound", f"The prefix list ID '{prefix_list_id}' does not exist"
        )
    return pl


def current_entries(pl: ManagedPrefixList) -> list[dict[str, str]]:
    """The entries of the list's latest version."""
    return list(pl.entries.get(pl.version, [])) if pl.entries else []


def modify_managed_prefix_list_model(
    self: ManagedPrefixListBackend,
    add_entry: list[dict[str, str]],
    remove_entry: list[dict[str, str]],
    prefix_list_id: str | None = None,
    current_version: int | None = None,
    prefix_list_name: str | None = None,
    max_entries: int | None = None,
) -> ManagedPrefixList:
    """Replaces ManagedPrefixListBackend.modify_managed_prefix_list with AWS's rules:
    checked first, then applied whole (removals before additions), one new version."""
    pl = prefix_list_or_fail(self, prefix_list_id)
    if pl.owner_id == "AWS":
        raise EC2ClientError("UnsupportedOperation", "AWS-managed prefix lists cannot be modified")
    if len(add_entry) + len(remove_entry) > PREFIX_LIST_ENTRIES_PER_REQUEST:
        raise EC2ClientError(
            "InvalidParameterValue",
            f"The number of entries per request cannot exceeds limit ({PREFIX_LIST_ENTRIES_PER_REQUEST}).",
        )
    if max_entries is not None and (add_entry or remove_entry):
        raise EC2ClientError(
            "InvalidParameterCombination",
            "You cannot modify the entries of a prefix list and resize it in the same request.",
        )
    if current_version is not None and current_version != pl.version:
        raise EC2ClientError("PrefixListVersionMismatch", "The prefix list has the incorrect version number.")
    entries = current_entries(pl)
    if max_entries is not None:
        if not 1 <= max_entries <= 1000 or max_entries < len(entries):
            raise EC2ClientError(
                "InvalidParameterValue",
                f"The maximum number of entries ({max_entries}) must be between 1 and 1000 and at "
                f"least the number of entries in the prefix list ({len(entries)}).",
            )
        pl.max_entries = max_entries
    if add_entry or remove_entry:
        removed = {e["Cidr"] for e in remove_entry}
        missing = removed - {e["Cidr"] for e in entries}
        if missing:
            raise EC2ClientError(
                "InvalidPrefixListModification",
                f"The entry {sorted(missing)[0]} does not exist in the prefix list.",
            )
        entries = [e for e in entries if e["Cidr"] not in removed]
        added = {e["Cidr"] for e in add_entry}
        entries = [e for e in entries if e["Cidr"] not in added] + [dict(e) for e in add_entry]
        if pl.max_entries is not None and len(entries) > int(pl.max_entries):
            raise EC2ClientError(
                "PrefixListMaxEntriesExceeded",
                f"The prefix list has exceeded its maximum number of entries ({pl.max_entries}).",
            )
        pl.version += 1  # type: ignore[operator]
        pl.entries[pl.version] = entries
    if prefix_list_name:
        pl.prefix_list_name = prefix_list_name
    pl.state = "modify-complete"
    return pl


def modify_managed_prefix_list_response(self: VPCs) -> ActionResult:
    """Replaces the ModifyManagedPrefixList handler to pass MaxEntries on."""
    version = self._get_param("CurrentVersion")
    max_entries = self._get_param("MaxEntries")
    pl = self.ec2_backend.modify_managed_prefix_list(
        add_entry=self._get_param("AddEntries", []),
        remove_entry=self._get_param("RemoveEntries", []),
        prefix_list_id=self._get_param("PrefixListId"),
        current_version=int(version) if version else None,
        prefix_list_name=self._get_param("PrefixListName"),
        max_entries=int(max_entries) if max_entries else None,
    )
    return ActionResult({"PrefixList": pl})


def create_managed_prefix_list_response(self: VPCs) -> ActionResult:
    """Wraps the CreateManagedPrefixList handler: MaxEntries is required and bounds the entries."""
    max_entries = self._get_param("MaxEntries")
    entries = self._get_param("Entries", [])
    if max_entries is None or not 1 <= int(max_entries) <= 1000:
        raise EC2ClientError("InvalidParameterValue", "MaxEntries must be between 1 and 1000.")
    if len(entries) > int(max_entries):
        raise EC2ClientError(
            "PrefixListMaxEntriesExceeded",
            f"The prefix list has exceeded its maximum number of entries ({max_entries}).",
        )
    return _moto_create_managed_prefix_list(self)


_moto_create_managed_prefix_list = VPCs.create_managed_prefix_list


def get_managed_prefix_list_entries_response(self: VPCs) -> ActionResult:
    """Replaces the GetManagedPrefixListEntries handler: unknown ids and versions are errors."""
    pl = prefix_list_or_fail(self.ec2_backend, self._get_param("PrefixListId"))
    target = self._get_param("TargetVersion")
    if target:
        if int(target) not in pl.entries and not (int(target) == pl.version and not pl.entries):
            raise EC2ClientError("InvalidParameterValue", f"The version {target} does not exist.")
        entries = list(pl.entries.get(int(target), []))
    else:
        entries = current_entries(pl)
    return ActionResult({"Entries": entries})


# --------------------------------------------------------------------------
# Regions: which are enabled for the account, and DescribeRegions.
# --------------------------------------------------------------------------

REGION_FILTERS = {"region-name": "name", "endpoint": "endpoint", "opt-in-status": "opt_in_status"}


def commercial_regions() -> list[Any]:
    """moto's Region objects of the `aws` partition (no GovCloud, no China)."""
    return [
        r
        for r in RegionsAndZonesBackend.regions
        if r.endpoint.endswith(".amazonaws.com") and not r.name.startswith("us-gov-")
    ]


def opt_in(region_names: Iterable[str]) -> None:
    """Mark opt-in regions as opted in (enabled for the account)."""
    wanted = set(region_names)
    for region in commercial_regions():
        if region.name in wanted and region.opt_in_status == "not-opted-in":
            region.opt_in_status = "opted-in"
    unknown = wanted - {r.name for r in commercial_regions()}
    if unknown:
        raise SystemExit(f"--opt-in: unknown region(s) {sorted(unknown)}")


def enabled_region_names() -> set[str]:
    return {r.name for r in commercial_regions() if r.opt_in_status != "not-opted-in"}


def describe_regions_response(self: AvailabilityZonesAndRegions) -> ActionResult:
    """Replaces the DescribeRegions handler with AWS's selection rules."""
    self.error_on_dryrun()
    regions = commercial_regions()
    names = self._get_param("RegionNames", [])
    if names:
        by_name = {r.name: r for r in regions}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise EC2ClientError("InvalidParameterValue", f"Invalid region: {unknown[0]}")
        regions = [by_name[n] for n in names]
    elif not self._get_bool_param("AllRegions", False):
        regions = [r for r in regions if r.opt_in_status != "not-opted-in"]
    for name, values in self._filters_from_querystring().items():
        if name not in REGION_FILTERS:
            raise invalid_filter(name)
        regions = [r for r in regions if matches_any(values, [getattr(r, REGION_FILTERS[name])])]
    return ActionResult({"Regions": regions})


def patch_moto() -> None:
    """Install every model/handler replacement above into moto's classes."""
    NatGatewayBackend.describe_nat_gateways = describe_nat_gateways_model
    NatGatewayBackend.create_nat_gateway = create_nat_gateway_model
    NatGatewayBackend.delete_nat_gateway = delete_nat_gateway_model
    NatGateways.describe_nat_gateways = describe_nat_gateways_response
    NatGateways.create_nat_gateway = create_nat_gateway_response
    NatGateways.associate_nat_gateway_address = associate_nat_gateway_address_response
    SecurityGroups.authorize_security_group_ingress = authorize_security_group_ingress_response
    SecurityGroupRule.__init__ = security_group_rule_init
    SecurityGroupRule.get_tags = own_tags
    NatGateway.get_tags = own_tags
    SecurityGroups.describe_security_group_rules = describe_security_group_rules_response
    AvailabilityZonesAndRegions.describe_regions = describe_regions_response
    ManagedPrefixListBackend.modify_managed_prefix_list = modify_managed_prefix_list_model
    VPCs.modify_managed_prefix_list = modify_managed_prefix_list_response
    VPCs.create_managed_prefix_list = create_managed_prefix_list_response
    VPCs.get_managed_prefix_list_entries = get_managed_prefix_list_entries_response
    moto.core.responses.method_names_from_class = method_names_cached  # last: classes are final now


# --------------------------------------------------------------------------
# moto's per-request overhead: work that depends only on code, done once.
# --------------------------------------------------------------------------


class Dispatcher(DomainDispatcherApplication):
    """moto's host -> service dispatcher, remembering each host's answer.

    Stock moto answers every request by listing its package directory (a
    stat() per service module) and then trying every service's URL regex:
    about 1 ms of CPU per request, under a lock that every request takes.
    The answer depends only on the host name (and moto's code), so it is
    computed once per host. Callers hold ``self.lock``."""

    HOSTS_REMEMBERED = 4096  # bound: S3 virtual-host names are unbounded in principle

    def __init__(self, create_app: Callable[..., Any]):
        super().__init__(create_app)
        self._backend_for_host: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        try:
            return self._backend_for_host[host]
        except KeyError:
            pass
        backend = super().get_backend_for_host(host)
        if len(self._backend_for_host) < self.HOSTS_REMEMBERED:
            self._backend_for_host[host] = backend
        return backend


_method_names: dict[type, frozenset[str]] = {}


def method_names_cached(clazz: type) -> frozenset[str]:
    """Replaces moto.core.responses.method_names_from_class, which runs
    inspect.getmembers over the response class (EC2's has hundreds of methods,
    ~0.7 ms) on every request only to test ``action in names``. The classes
    are final once patch_moto() has run, before the first request."""
    names = _method_names.get(clazz)
    if names is None:
        names = _method_names[clazz] = frozenset(method_names_from_class(clazz))
    return names


# --------------------------------------------------------------------------
# What a request is: region/service from SigV4, action from the parameters.
# --------------------------------------------------------------------------


class RequestInfo:
    """Region, service, access key, account and action of one AWS request (None when unsigned)."""

    def __init__(self, environ: dict[str, Any]):
        self.region, self.service = credential_scope(environ)
        match = re.search(r"Credential=([^/,\s]+)/", environ.get("HTTP_AUTHORIZATION", ""))
        self.access_key = match.group(1) if match else None
        self.account = key_account(self.access_key) if self.access_key else None
        self.target = environ.get("HTTP_X_AMZ_TARGET")
        self.action = request_action(environ, self.target)

    def key(self) -> tuple[str, str, str]:
        return (self.region or "-", self.service or "-", self.action)


# Access key -> account, as moto resolves it (a scan of every account's IAM keys).
# An issued key keeps its account until POST /moto-api/reset, which empties this.
ACCOUNT_OF_KEY: dict[str, str] = {}


def key_account(key: str) -> str:
    """The account moto acts in for the access key `key`."""
    account = ACCOUNT_OF_KEY.get(key)
    if account is None:
        account = get_account_id_from(key)
        if account != DEFAULT_ACCOUNT_ID:  # an unknown key may be issued later, in another account
            ACCOUNT_OF_KEY[key] = account
    return account


def credential_scope(environ: dict[str, Any]) -> tuple[str | None, str | None]:
    """(region, service) from `Credential=AKID/date/region/service/aws4_request`,
    in the Authorization header or a presigned URL's X-Amz-Credential."""
    match = re.search(r"Credential=([^,\s]+)", environ.get("HTTP_AUTHORIZATION", ""))
    scope = match.group(1) if match else None
    if scope is None:
        scope = parse_qs(environ.get("QUERY_STRING", "")).get("X-Amz-Credential", [None])[0]
    parts = scope.split("/") if scope else []
    if len(parts) == 5 and parts[4] == "aws4_request":
        return parts[2], parts[3]
    return None, None


def request_action(environ: dict[str, Any], target: str | None) -> str:
    """`Action=` of a Query request (body or query string), the operation of a
    JSON request (X-Amz-Target), else the HTTP method of a REST request."""
    action = parse_qs(environ.get("QUERY_STRING", "")).get("Action", [None])[0]
    content_type = environ.get("CONTENT_TYPE", "")
    if action is None and content_type.startswith("application/x-www-form-urlencoded"):
        action = parse_qs(buffer_body(environ).decode("utf-8", "replace")).get("Action", [None])[0]
    if action is None and target:
        action = target.rsplit(".", 1)[-1]
    return action or environ.get("REQUEST_METHOD", "GET")


def buffer_body(environ: dict[str, Any]) -> bytes:
    """Read the request body once and put it back for moto to read again."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = BytesIO(body)
    return body


# --------------------------------------------------------------------------
# AWS-shaped error bodies, by protocol.
# --------------------------------------------------------------------------


ErrorReply = tuple[str, list[tuple[str, str]], bytes]  # status line, headers, body


def aws_error(info: RequestInfo, status: int, code: str, message: str) -> ErrorReply:
    """(status line, headers, body) of an AWS error in the request's protocol."""
    request_id = str(uuid.uuid4())
    code_x, message_x = escape(code), escape(message)
    if info.target:
        content_type = "application/x-amz-json-1.1"
        body = json.dumps({"__type": code, "message": message})
    elif info.service == "ec2":
        content_type = "text/xml"
        body = (
            f"<Response><Errors><Error><Code>{code_x}</Code><Message>{message_x}</Message>"
            f"</Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
    elif info.service == "s3":
        content_type = "application/xml"
        body = (
            f"<Error><Code>{code_x}</Code><Message>{message_x}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        )
    else:  # other Query and REST-XML services (STS, IAM, CloudFront, ...)
        kind = "Receiver" if status >= 500 else "Sender"
        content_type = "text/xml"
        body = (
            f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code_x}</Code>"
            f"<Message>{message_x}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    data = body.encode("utf-8")
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(data))),
        ("x-amzn-RequestId", request_id),
        ("x-amz-request-id", request_id),
    ]
    return f"{status} {reason(status)}", headers, data


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# --------------------------------------------------------------------------
# Fault table and request counters.
# --------------------------------------------------------------------------

FAULT_MODES = ("error", "delay", "reset", "drop")
# How long a `drop` fault holds a request whose client does not give up (a
# rule's non-zero delay_ms overrides it).
DROP_HOLD_SECONDS = 120.0
FAULT_DEFAULTS = {
    "account": "*",
    "region": "*",
    "service": "*",
    "action": "*",
    "status": 503,
    "code": "Unavailable",
    "message": "The service is unavailable (fault injected by the test bed).",
    "delay_ms": 0,
    "times": None,
}


class ResetConnection(ConnectionResetError):
    """Raised by the middleware to make the server drop the connection with a TCP RST."""


class DropConnection(ConnectionAbortedError):
    """Raised by the middleware after holding a request unanswered: the server
    closes the connection (FIN) without sending a byte of a response."""


def hold_unanswered(environ: dict[str, Any], seconds: float, state: "TestbedState") -> None:
    """Block until the client closes its side of the connection (EOF or reset)
    or `seconds` pass, whichever comes first; `state.held` counts the requests
    held meanwhile. The request body is read first, so anything readable
    afterwards is the client's close."""
    buffer_body(environ)
    with state.lock:
        state.held += 1
    try:
        wait_for_client_close(environ, seconds)
    finally:
        with state.lock:
            state.held -= 1


def wait_for_client_close(environ: dict[str, Any], seconds: float) -> None:
    """Return once the peer has closed (or reset) the request's connection, or after `seconds`."""
    sock = environ.get("werkzeug.socket")
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if sock is None:
            time.sleep(min(left, 0.5))
            continue
        try:
            readable, _, _ = select.select([sock], [], [], min(left, 0.5))
            if readable and sock.recv(1, socket.MSG_PEEK) == b"":
                return  # the client closed the connection: it gave up
        except (OSError, ValueError):
            return  # reset by the client, or the socket is gone
        if readable:
            time.sleep(min(left, 0.05))  # unexpected bytes (pipelining): keep holding, no busy loop


def parse_fault(raw: Any) -> dict[str, Any]:
    """Validate one rule and fill in defaults; ValueError says what is wrong."""
    if not isinstance(raw, dict):
        raise ValueError("each fault rule must be a JSON object")
    unknown = set(raw) - set(FAULT_DEFAULTS) - {"mode"}
    if unknown:
        raise ValueError(f"unknown fault field(s): {sorted(unknown)}")
    rule = {**FAULT_DEFAULTS, **raw}
    if rule.get("mode") not in FAULT_MODES:
        raise ValueError(f"mode must be one of {FAULT_MODES}, got {rule.get('mode')!r}")
    for field in ("account", "region", "service", "action", "code", "message"):
        if not isinstance(rule[field], str):
            raise ValueError(f"{field} must be a string")
    for field in ("status", "delay_ms"):
        if not isinstance(rule[field], int) or rule[field] < 0:
            raise ValueError(f"{field} must be a non-negative integer")
    if rule["times"] is not None and (not isinstance(rule["times"], int) or rule["times"] < 0):
        raise ValueError("times must be null or a non-negative integer")
    return rule


class TestbedState:
    """The fault table and the request counters, shared by all server threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.faults: list[dict[str, Any]] = []
        self.counts: dict[tuple[str, str, str, str], int] = {}
        self.held = 0  # requests a `drop` fault is holding right now
        self.read_cache_hits = 0  # reads answered by ReadCache instead of moto

    def clear(self) -> None:
        with self.lock:
            self.faults = []
            self.counts = {}
            self.read_cache_hits = 0

    def count(self, info: RequestInfo) -> None:
        key = (*info.key(), info.account or "-")
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def take_fault(self, info: RequestInfo) -> dict[str, Any] | None:
        """The first rule matching this request, its `times` spent by one."""
        region, service, action = info.key()
        account = info.account or "-"
        with self.lock:
            for rule in self.faults:
                if rule["times"] == 0:
                    continue
                if all(rule[f] in ("*", value) for f, value in
                       (("account", account), ("region", region), ("service", service), ("action", action))):
                    if rule["times"] is not None:
                        rule["times"] -= 1
                    return dict(rule)
        return None

    def counters_json(self) -> dict[str, Any]:
        with self.lock:
            rows = [
                {"account": acct, "region": r, "service": s, "action": a, "count": n}
                for (r, s, a, acct), n in sorted(self.counts.items())
            ]
            hits = self.read_cache_hits
        return {"requests": rows, "total": sum(row["count"] for row in rows), "read_cache_hits": hits}


# --------------------------------------------------------------------------
# The middleware in front of moto's WSGI app.
# --------------------------------------------------------------------------

StartResponse = Callable[..., Any]


class TestbedMiddleware:
    """Serves /_testbed/*, counts and faults AWS requests, rejects disabled regions."""

    def __init__(self, app: Callable[..., Any], state: TestbedState, enabled_regions: set[str]):
        self.app = app
        self.state = state
        self.enabled_regions = enabled_regions

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path.startswith("/_testbed/"):
            return self.control(method, path, environ, start_response)
        if path.startswith("/moto-api/"):
            body = list(self.app(environ, start_response))
            if path == "/moto-api/reset" and method == "POST":
                self.state.clear()
                SETTINGS.update(SETTINGS_DEFAULTS)
                ACCOUNT_OF_KEY.clear()
            return body

        info = environ["testbed.request"] = RequestInfo(environ)
        self.state.count(info)
        fault = self.state.take_fault(info)
        if fault is not None:
            if fault["mode"] == "reset":
                raise ResetConnection("fault injected by the test bed")
            if fault["mode"] == "drop":
                hold_unanswered(environ, fault["delay_ms"] / 1000.0 or DROP_HOLD_SECONDS, self.state)
                raise DropConnection("fault injected by the test bed")
            if fault["mode"] == "error":
                status, headers, data = aws_error(info, fault["status"], fault["code"], fault["message"])
                start_response(status, headers)
                return [data]
            time.sleep(fault["delay_ms"] / 1000.0)
        if info.region is not None and info.region not in self.enabled_regions:
            status, headers, data = aws_error(
                info, 401, "AuthFailure",
                "AWS was not able to validate the provided access credentials: "
                f"region '{info.region}' is not enabled for this account.",
            )
            start_response(status, headers)
            return [data]
        return self.app(environ, start_response)

    def control(
        self, method: str, path: str, environ: dict[str, Any], start_response: StartResponse
    ) -> list[bytes]:
        """The test bed's own API: faults and request counters."""
        if path == "/_testbed/faults" and method == "POST":
            try:
                rules = json.loads(buffer_body(environ) or b"null")
                if not isinstance(rules, list):
                    raise ValueError("the body must be a JSON list of fault rules")
                parsed = [parse_fault(r) for r in rules]
            except ValueError as err:
                return reply(start_response, 400, {"error": str(err)})
            with self.state.lock:
                self.state.faults = parsed
            return reply(start_response, 200, {"faults": parsed})
        if path == "/_testbed/faults" and method == "GET":
            with self.state.lock:
                return reply(start_response, 200, {"faults": list(self.state.faults)})
        if path == "/_testbed/faults" and method == "DELETE":
            with self.state.lock:
                self.state.faults = []
            return reply(start_response, 200, {"faults": []})
        if path == "/_testbed/settings" and method == "POST":
            try:
                update = json.loads(buffer_body(environ) or b"null")
                if not isinstance(update, dict) or not set(update) <= set(SETTINGS):
                    raise ValueError(f"the body must be a JSON object with keys from {sorted(SETTINGS)}")
                if not all(isinstance(v, bool) for v in update.values()):
                    raise ValueError("settings are booleans")
            except ValueError as err:
                return reply(start_response, 400, {"error": str(err)})
            SETTINGS.update(update)
            return reply(start_response, 200, dict(SETTINGS))
        if path == "/_testbed/held" and method == "GET":
            with self.state.lock:
                return reply(start_response, 200, {"held": self.state.held})
        if path == "/_testbed/requests" and method == "GET":
            return reply(start_response, 200, self.state.counters_json())
        if path == "/_testbed/requests" and method == "DELETE":
            with self.state.lock:
                self.state.counts = {}
                self.state.read_cache_hits = 0
            return reply(start_response, 200, {"requests": [], "total": 0, "read_cache_hits": 0})
        return reply(start_response, 404, {"error": f"no test bed endpoint {method} {path}"})


def reply(start_response: StartResponse, status: int, payload: Any) -> list[bytes]:
    data = json.dumps(payload).encode("utf-8")
    start_response(
        f"{status} {reason(status)}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
    )
    return [data]


# --------------------------------------------------------------------------
# Repeated reads answered without moto, exactly.
# --------------------------------------------------------------------------


class ReadCache:
    """Answers a repeated EC2 read with moto's earlier answer while nothing has changed.

    moto serves every request in one GIL-bound process at ~1-3 ms of CPU each,
    so 170 concurrent lookups queue for the interpreter where AWS would answer
    them in parallel. A read (the Describe/Get actions below) whose request is
    byte-identical to an earlier one, for the same access key and region, gets
    the earlier 200 answer with a fresh request id, as long as no other request
    has reached moto since: any other request (a write of any service,
    /moto-api/*) empties the cache before and after it runs, and a read that
    overlapped a write is not kept. Faults and counters are applied before this
    (TestbedMiddleware), so a faulted or counted read behaves as before.
    `POST /_testbed/settings {"read_cache": false}` turns it off."""

    READS = frozenset({
        "DescribeAddresses", "DescribeManagedPrefixLists", "DescribeNatGateways", "DescribeRegions",
        "DescribeSecurityGroupRules", "DescribeSecurityGroups", "GetManagedPrefixListEntries",
    })
    MAX_ENTRIES = 4096

    def __init__(self, app: Callable[..., Any], state: TestbedState):
        self.app = app
        self.state = state
        self.lock = threading.Lock()
        self.generation = 0  # bumped by every request that may change moto's state
        self.entries: dict[tuple[Any, ...], tuple[str, list[tuple[str, str]], bytes]] = {}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        key = self.key(environ)
        if key is None:
            self.invalidate()
            try:
                return list(self.app(environ, start_response))
            finally:
                self.invalidate()
        with self.lock:
            generation = self.generation
            hit = self.entries.get(key) if SETTINGS["read_cache"] else None
        if hit is not None:
            status, headers, body = hit
            with self.state.lock:
                self.state.read_cache_hits += 1
            start_response(status, [(n, new_request_id() if n.lower() == "x-amzn-requestid" else v)
                                    for n, v in headers])
            return [body]
        answer: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer["status"], answer["headers"] = status, list(headers)
            return start_response(status, headers, exc_info)

        body = b"".join(self.app(environ, capture))
        if answer.get("status", "").startswith("200 "):
            with self.lock:
                if self.generation == generation and len(self.entries) < self.MAX_ENTRIES:
                    self.entries[key] = (answer["status"], answer["headers"], body)
        return [body]

    def key(self, environ: dict[str, Any]) -> tuple[Any, ...] | None:
        """What makes two reads the same request; None for anything that is not a read."""
        info = environ.get("testbed.request")
        if info is None or info.access_key is None or info.service != "ec2" or info.action not in self.READS:
            return None
        return (info.access_key, info.region, environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"),
                environ.get("QUERY_STRING"), buffer_body(environ), tuple(sorted(SETTINGS.items())))

    def invalidate(self) -> None:
        with self.lock:
            self.generation += 1
            self.entries.clear()


_REQUEST_IDS = itertools.count()
_REQUEST_ID_PREFIX = base64.b32encode(os.urandom(25)).decode()[:40]


def new_request_id() -> str:
    """A request id shaped like moto's (52 letters and digits), unique in this process."""
    return f"{_REQUEST_ID_PREFIX}{next(_REQUEST_IDS):012d}"


# --------------------------------------------------------------------------
# The threaded server, able to drop a connection with a TCP RST.
# --------------------------------------------------------------------------


class RequestHandler(MotoRequestHandler):
    """moto's handler, with HTTP/1.1 keep-alive as AWS has it; a ResetConnection from
    the app aborts the connection, a DropConnection closes it gracefully, both
    without a response.

    werkzeug answers every request with `Connection: close`: http.server cannot
    find the next request line when an app leaves part of a body unread, and
    after each response werkzeug drains whatever the socket still holds (which,
    on a kept connection, would swallow the client's next request). Here a
    request framed by `Content-Length` alone has its body read before the app
    runs and the app (and the drain) read from that copy, so the connection is
    left open for the client's next request. Chunked bodies and `Connection:
    close` requests keep werkzeug's one request per connection."""

    keep_alive = False
    # Buffered: the headers and the body of a response leave in one send (werkzeug
    # flushes after each write), not one send each.
    wbufsize = -1

    def setup(self) -> None:
        super().setup()
        # A response leaves as soon as it is flushed: on a kept connection Nagle's
        # algorithm would hold a write behind the client's delayed ACK of the one
        # before (40 ms on Linux), e.g. a final answer after a 100 Continue.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def run_wsgi(self) -> None:
        if "Expect" in self.headers:
            # http.server has answered `100-continue` into the write buffer: send it
            # now, before the body is read, and keep werkzeug from adding a second one.
            self.wfile.flush()
            del self.headers["Expect"]
        self.keep_alive = self.body_framed_by_length() and not self.close_connection
        if not self.keep_alive:
            super().run_wsgi()
            return
        length = int(self.headers.get("Content-Length") or 0)
        stream = self.rfile
        self.rfile = BytesIO(stream.read(length) if length else b"")
        try:
            super().run_wsgi()
        finally:
            self.rfile = stream

    def body_framed_by_length(self) -> bool:
        """True when the request's body is exactly its `Content-Length` bytes (or empty)."""
        if "Transfer-Encoding" in self.headers:
            return False
        lengths = self.headers.get_all("Content-Length") or []
        return len(lengths) <= 1 and all(v.strip().isdigit() for v in lengths)

    def send_header(self, keyword: str, value: str) -> None:
        if self.keep_alive and keyword.lower() == "connection" and value.strip().lower() == "close":
            return  # the body was read in full: the connection can carry the next request
        super().send_header(keyword, value)

    def connection_dropped(self, error: BaseException, environ: Any = None) -> None:
        if isinstance(error, DropConnection):
            self.close_connection = True
        if isinstance(error, ResetConnection):
            self.close_connection = True
            # Linger 0: close() sends RST at once instead of a FIN handshake.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.server.abort_on_close(self.connection)
        super().connection_dropped(error, environ)


class Server(ThreadedWSGIServer):
    """werkzeug's threaded server; aborted connections skip the graceful shutdown."""

    # The listen backlog. werkzeug's 128 is too few for a client that opens a
    # connection per concurrent request (each connection carries one request at
    # a time): 170 at once overflow it, and the kernel drops the excess
    # SYNs, which the client retransmits only after a second. The kernel caps
    # this at net.core.somaxconn (4096 by default).
    request_queue_size = 4096

    def __init__(self, port: int, app: Callable[..., Any]):
        self._aborted: set[socket.socket] = set()
        self._aborted_lock = threading.Lock()
        super().__init__(HOST, port, app, handler=RequestHandler)

    def abort_on_close(self, connection: socket.socket) -> None:
        with self._aborted_lock:
            self._aborted.add(connection)

    def shutdown_request(self, request: Any) -> None:
        with self._aborted_lock:
            aborted = request in self._aborted
            self._aborted.discard(request)
        if aborted:
            request.close()
        else:
            super().shutdown_request(request)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--opt-in", default="", help="comma-separated opt-in regions to enable")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    args = parser.parse_args(argv)

    patch_moto()
    # Python hands the GIL to another thread every 5 ms by default; with 170 requests
    # in flight that convoy costs more CPU than the requests (measured: 210 -> 150 ms
    # of CPU per 170 cached reads with 20 ms). Threads still switch at every socket
    # wait and sleep, so no request waits on a busy one for long.
    sys.setswitchinterval(0.02)
    opt_in(r for r in args.opt_in.split(",") if r)
    state = TestbedState()
    app = TestbedMiddleware(ReadCache(Dispatcher(create_backend_app), state), state, enabled_region_names())
    server = Server(args.port, app)
    if args.quiet:
        RequestHandler.log_request = lambda *a, **k: None  # type: ignore[method-assign]
    print(f"READY http://{HOST}:{server.socket.getsockname()[1]}", flush=True)
    # From here on stdout is stderr: a launcher reads only the READY line, and
    # anything moto prints later must not fill a pipe nobody drains.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
