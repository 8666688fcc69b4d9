"""Claiming by people: start a claim, prove possession, finish it; release a device.

- :mod:`.claiming`: a user's claims (start, finish, cancel, look at), and ending one.
- :mod:`.proofs`: the claim code or the device's secret, typed by the user.
- :mod:`.windows`: what the device reports (its button, a window with a secret).
- :mod:`.associations`: user-node association tokens handed over in Wi-Fi provisioning.
- :mod:`.ownership`: taking an unowned device and releasing an owned one.
- :mod:`.visibility`: what a user may see of a device (its page, its timeline, a label).
- :mod:`.policy`: the instance's claim settings and the rate limits they set.
- :mod:`.overview`: an admin's figures of their subtree.

Visibility is the rule that protects the fleet: a user sees the devices in their group's
subtree. A device that does not exist and one the user may not see are answered alike
(:class:`~provisiond.errors.DeviceNotFound`, one 404 page) and in the same time (the subtree
is part of the query that looks the serial up), so serials cannot be enumerated. Users who
may claim (admins, installers) may also start claims on unowned (registered or released)
devices, whose serial they must have.

Every change is one transaction with its audit event; claim events reach open claim pages
through the :class:`~provisiond.services.claim_hub.ClaimHub` after the commit. Claims and
devices move only along the domain's tables (:data:`~provisiond.domain.claims.CLAIM_LIFECYCLE`,
:data:`~provisiond.domain.device.LIFECYCLE`): services ask them before moving, and the store's
guarded updates admit only the moves they name. Two people claiming one device at once: the
partial unique index on live claims admits one claim, and the guarded update of the device
(``WHERE state IN`` the states a claim may leave) admits one owner; the other gets a conflict.
"""
