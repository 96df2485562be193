"""
The twistd plugin: C{twistd -n gk --config FILE}.

twistd imports plugins before it installs a reactor; gk needs the asyncio
reactor (the Ollama client is asyncio code), so this file installs it when
no reactor is installed yet.  C{twistd --reactor=asyncio gk} works too.
"""

from __future__ import annotations

import asyncio
import os
import sys

if "twisted.internet.reactor" not in sys.modules:
    from twisted.internet import asyncioreactor

    _loop = asyncio.new_event_loop()
    asyncio.set_event_loop(_loop)
    asyncioreactor.install(_loop)

from twisted.application.service import IService, IServiceMaker
from twisted.plugin import IPlugin
from twisted.python import usage
from zope.interface import implementer


class Options(usage.Options):
    synopsis = "--config FILE"
    longdesc = "Run every gk service of the config file in this process."
    optParameters = [
        ["config", "c", None, "the gk config file (default: $GK_CONFIG)"],
    ]


@implementer(IServiceMaker, IPlugin)
class GkServiceMaker:
    tapname = "gk"
    description = "gk: mail, calendars, contacts, chat and an assistant in one process"
    options = Options

    def makeService(self, options: Options) -> IService:
        # Imported here so that listing twistd's plugins stays cheap.
        from gk.main import service_from_options

        return service_from_options(options["config"] or os.environ.get("GK_CONFIG"))


serviceMaker = GkServiceMaker()
