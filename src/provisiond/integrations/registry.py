"""Every integration, registered once; bootstrap.py loops over these lists.

Adding an integration: a folder with its code and a ``wiring.py`` describing it
(integrations/integration.py), and one line here.
"""

from __future__ import annotations

from typing import Any

from provisiond.integrations.emqx.wiring import EMQX
from provisiond.integrations.integration import Integration
from provisiond.integrations.mosquitto_dynsec.wiring import MOSQUITTO_DYNSEC
from provisiond.integrations.mosquitto_files.wiring import MOSQUITTO_FILES
from provisiond.integrations.tts.wiring import TTS
from provisiond.integrations.webhooks.wiring import WEBHOOKS
from provisiond.services.broker_keeper import AccountKeeper

# the ways of keeping the broker in step (at most one is enabled: broker__kind)
BROKER_KEEPERS: tuple[Integration[AccountKeeper], ...] = (
    MOSQUITTO_DYNSEC,
    MOSQUITTO_FILES,
    EMQX,
)
INTEGRATIONS: tuple[Integration[Any], ...] = (*BROKER_KEEPERS, TTS, WEBHOOKS)

__all__ = ["BROKER_KEEPERS", "INTEGRATIONS", "TTS", "WEBHOOKS"]
