"""
The client set-up documents built from a config alone: which servers,
ports and security a deployment offers, and documents that stay
well-formed whatever the names in them.
"""

from __future__ import annotations

import plistlib
import xml.etree.ElementTree as ET

from gk.config import load_config
from gk.web.client_setup import autoconfig_xml, client_setup, mobileconfig
from tests.conftest import ConfigWriter


def test_a_standard_deployment_offers_implicit_tls_first_and_dav_behind_https(
    write_config: ConfigWriter,
) -> None:
    environ = {
        "GK_IMAP__LISTEN": '["tcp:143"]',
        "GK_IMAP__TLS_LISTEN": '["tcp:993", "tcp6:port=993"]',
        "GK_SUBMISSION__LISTEN": '["tcp:587"]',
        "GK_SUBMISSION__TLS_LISTEN": '["tcp:465"]',
        "GK_HTTP__PUBLIC_URL": "https://mail.example.test/gk/",
    }
    setup = client_setup(load_config(write_config(), environ=environ))
    assert [(s.port, s.security) for s in setup.imap] == [(993, "SSL"), (143, "STARTTLS")]
    assert [(s.port, s.security) for s in setup.smtp] == [(465, "SSL"), (587, "STARTTLS")]
    assert setup.dav is not None
    assert setup.dav.url == "https://mail.example.test/gk/dav/"
    assert setup.dav.principal_url("a+b@example.test") == (
        "https://mail.example.test/gk/dav/principals/a+b@example.test/"
    )
    assert setup.autoconfig_url == (
        "https://mail.example.test/gk/.well-known/autoconfig/mail/config-v1.1.xml"
    )

    profile = plistlib.loads(mobileconfig(setup, "alice@example.test"))
    again = plistlib.loads(mobileconfig(setup, "alice@example.test"))
    assert profile["PayloadUUID"] == again["PayloadUUID"]  # installing again replaces it
    caldav = next(
        p for p in profile["PayloadContent"] if p["PayloadType"].endswith("caldav.account")
    )
    assert (caldav["CalDAVHostName"], caldav["CalDAVPort"], caldav["CalDAVUseSSL"]) == (
        "mail.example.test",
        443,
        True,
    )


def test_names_cannot_break_the_documents_and_missing_services_are_left_out(
    write_config: ConfigWriter,
) -> None:
    setup = client_setup(load_config(write_config(), environ={}))
    assert setup.imap == () and setup.smtp == ()

    odd_domain = 'x"><incomingServer type="pop3">&amp;'
    document = ET.fromstring(autoconfig_xml(setup, [odd_domain, "example.test"]))
    provider = document.find("emailProvider")
    assert provider is not None
    assert [d.text for d in provider.findall("domain")] == [odd_domain, "example.test"]
    assert provider.findall("incomingServer") == [] and provider.findall("outgoingServer") == []

    odd_user = '"</string><key>IncomingPassword</key>"@example.test'
    profile = plistlib.loads(mobileconfig(setup, odd_user))
    kinds = [p["PayloadType"] for p in profile["PayloadContent"]]
    assert "com.apple.mail.managed" not in kinds
    assert all("IncomingPassword" not in p for p in profile["PayloadContent"])
    assert profile["PayloadContent"][0]["CalDAVUsername"] == odd_user
