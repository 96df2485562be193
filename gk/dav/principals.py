"""
The REPORTs about principals and properties rather than calendar or card
data: expand-property (RFC 3253 3.8), principal-property-search and
principal-search-property-set (RFC 3744 9.4, 9.5).

principal-property-search finds the signed-in user's own principal by any
of the searchable properties (display name, calendar user addresses,
email addresses), and another user's principal only when a search's text
is that user's exact address (as when a client looks up an attendee): no
listing or partial matching of other users.  Another user's principal
shows only L{gk.dav.properties.PUBLIC_PRINCIPAL_PROPS}.

expand-property follows hrefs to the signed-in user's own resources only;
other hrefs (another user's principal, C{mailto:} addresses) stay as they
are.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.etree.ElementTree import Element, SubElement

from gk.dav import paths
from gk.dav import properties as P
from gk.dav.context import DavContext
from gk.dav.exchange import Answer, DavError, DavRequest, xml_answer
from gk.dav.lookup import addresses, describe
from gk.dav.multistatus import Multistatus, PropValue, encode_href, serialize, text_element
from gk.dav.xmlbody import (
    BadRequestBody,
    ExpandProperty,
    PrincipalPropertySearch,
    PrincipalSearchPropertySet,
    PropertyRequest,
    PropertySearch,
    PropFind,
    href_to_path,
)
from gk.storage.accounts import Account

#: How deep expand-property follows hrefs.
MAX_EXPAND_DEPTH = 3

#: Properties principal-property-search can match, with a description.
SEARCHABLE = {
    P.d("displayname"): "Display name",
    P.c("calendar-user-address-set"): "Calendar user addresses",
    P.cs("email-address-set"): "Email addresses",
}

_MAILTO = "mailto:"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


async def run(
    ctx: DavContext,
    req: DavRequest,
    report: ExpandProperty | PrincipalPropertySearch | PrincipalSearchPropertySet,
) -> Answer:
    """Answer one of the principal reports on C{req.target}."""
    if isinstance(report, ExpandProperty):
        return await expand_property(ctx, req, report)
    if isinstance(report, PrincipalPropertySearch):
        return await principal_property_search(ctx, req, report)
    return search_property_set()


# -- expand-property -----------------------------------------------------------------


async def expand_property(ctx: DavContext, req: DavRequest, report: ExpandProperty) -> Answer:
    found, missing = await _expanded(ctx, req.account, req.target, report.properties, 0)
    multistatus = Multistatus()
    multistatus.add(req.target.path, found, missing)
    return xml_answer(207, multistatus.to_bytes())


async def _expanded(
    ctx: DavContext,
    account: Account,
    target: paths.Target,
    requests: Sequence[PropertyRequest],
    level: int,
) -> tuple[dict[str, PropValue], list[str]]:
    names = tuple(request.name for request in requests)
    described = await describe(ctx, account, target, PropFind("prop", names))
    values: dict[str, PropValue] = {**described.live, **described.dead}
    found: dict[str, PropValue] = {}
    missing: list[str] = []
    for request in requests:
        if request.name not in values:
            missing.append(request.name)
            continue
        value = values[request.name]
        if request.children and isinstance(value, Element) and level < MAX_EXPAND_DEPTH:
            value = await _expand_value(ctx, account, value, request.children, level + 1)
        found[request.name] = value
    return found, missing


async def _expand_value(
    ctx: DavContext,
    account: Account,
    value: Element,
    requests: Sequence[PropertyRequest],
    level: int,
) -> Element:
    """C{value} with each href to one of the user's resources replaced by a response."""
    expanded = Element(value.tag)
    for child in value:
        target = _own_target(child, account) if child.tag == P.d("href") else None
        if target is None:
            expanded.append(child)
            continue
        try:
            found, missing = await _expanded(ctx, account, target, requests, level)
        except DavError:
            expanded.append(_response(target.path, {}, [], status=404))
            continue
        expanded.append(_response(target.path, found, missing))
    return expanded


def _own_target(href: Element, account: Account) -> paths.Target | None:
    text = (href.text or "").strip()
    if text.lower().startswith(_MAILTO):
        return None
    try:
        target = paths.parse_decoded(href_to_path(text))
    except (BadRequestBody, paths.BadPath, paths.NotInLayout):
        return None
    return target if target.owner in (None, account.email) else None


def _response(
    path: str, found: dict[str, PropValue], missing: list[str], status: int = 200
) -> Element:
    """A C{DAV:response} element, as expand-property nests them."""
    response = Element(P.d("response"))
    SubElement(response, P.d("href")).text = encode_href(path)
    if status != 200:
        SubElement(response, P.d("status")).text = f"HTTP/1.1 {status} Not Found"
        return response
    for code, props in ((200, found), (404, dict.fromkeys(missing))):
        if not props:
            continue
        propstat = SubElement(response, P.d("propstat"))
        prop = SubElement(propstat, P.d("prop"))
        for name, item in props.items():
            if isinstance(item, Element):
                prop.append(item)
            elif isinstance(item, str):
                prop.append(text_element(name, item))
            else:
                SubElement(prop, name)
        reason = "OK" if code == 200 else "Not Found"
        SubElement(propstat, P.d("status")).text = f"HTTP/1.1 {code} {reason}"
    if len(response) == 1:
        SubElement(response, P.d("status")).text = "HTTP/1.1 200 OK"
    return response


# -- principal-property-search ----------------------------------------------------------


def _matches(search: PropertySearch, values: dict[str, list[str]]) -> bool:
    needle = search.match.strip().casefold()
    for name in search.names:
        for value in values.get(name, []):
            text = value.casefold()
            if (
                (search.match_type == "contains" and needle in text)
                or (search.match_type == "starts-with" and text.startswith(needle))
                or (search.match_type == "ends-with" and text.endswith(needle))
                or (search.match_type == "equals" and text == needle)
            ):
                return True
    return False


def _searchable(email: str, mail: list[str]) -> dict[str, list[str]]:
    return {
        P.d("displayname"): [email],
        P.c("calendar-user-address-set"): [
            *(f"{_MAILTO}{a}" for a in mail),
            *mail,
            paths.principal_path(email),
        ],
        P.cs("email-address-set"): mail,
    }


def _address_in(text: str) -> str | None:
    value = text.strip()
    if value.lower().startswith(_MAILTO):
        value = value[len(_MAILTO) :]
    return value.lower() if "@" in value else None


async def principal_property_search(
    ctx: DavContext, req: DavRequest, report: PrincipalPropertySearch
) -> Answer:
    """See the module docstring for who can be found."""
    user = req.account.email
    candidates: dict[str, list[str]] = {user: await addresses(ctx, user)}
    for search in report.searches:
        address = _address_in(search.match)
        if address is None or address in candidates:
            continue
        other = await ctx.accounts.get_user(address)
        if other is not None:
            candidates[other.email] = await addresses(ctx, other.email)
    multistatus = Multistatus()
    request = report.prop if report.prop.kind == "prop" else PropFind("prop")
    for email, mail in candidates.items():
        values = _searchable(email, mail)
        results = [_matches(search, values) for search in report.searches]
        if not (all(results) if report.test == "allof" else any(results)):
            continue
        live = P.principal_props(email, user, mail)
        hidden = [] if email == user else [n for n in live if n not in P.PUBLIC_PRINCIPAL_PROPS]
        P.add_response(multistatus, paths.principal_path(email), live, request, hidden=hidden)
    return xml_answer(207, multistatus.to_bytes())


def search_property_set() -> Answer:
    """The properties principal-property-search matches (RFC 3744 9.5)."""
    root = Element(P.d("principal-search-property-set"))
    for name, description in SEARCHABLE.items():
        item = SubElement(root, P.d("principal-search-property"))
        SubElement(SubElement(item, P.d("prop")), name)
        SubElement(item, P.d("description"), {_XML_LANG: "en"}).text = description
    return xml_answer(200, b'<?xml version="1.0" encoding="utf-8"?>\n' + serialize(root))
