"""The offer book: offers the framework holds, and whether it wants any.

Offers are held only while work is pending; others are declined at once (with Mesos's
refuse filter, `refuse_seconds`), and so are offers held past `offer_hold_seconds`, so that
Mesos may offer their resources afresh. Rescinded offers and the offers of a lost agent
are forgotten. While nothing is pending the framework suppresses offers; when work
arrives it revives them, since the offers declined meanwhile left filters on their agents.

The book decides; the driver sends what it decides (DECLINE, REVIVE, SUPPRESS). It is not
locked itself: the driver calls it under its one lock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from titus.master.mesos.translate import Offer

#: Offer cycles kept for the benchmark and operators' logs.
CYCLES_KEPT = 100


@dataclass
class OfferCycle:
    """One batch of offers and how long until every one of them was answered."""

    received: float
    offers: int
    answered: float | None = None
    accepted: int = 0
    declined: int = 0


@dataclass(frozen=True)
class OfferWish:
    """What to tell Mesos after the leader said whether work is pending."""

    revive: bool = False
    suppress: bool = False
    #: Held offers to decline (nothing is pending any more).
    decline: list[str] = field(default_factory=list)


class OfferBook:
    """Held offers by id and by agent, lost agents, the pending/suppressed state, cycles."""

    def __init__(self) -> None:
        self._offers: dict[str, Offer] = {}
        self._by_agent: dict[str, set[str]] = {}
        self._lost_agents: set[str] = set()
        self.pending = False
        self._suppressed = False
        #: Recent offer cycles (newest last).
        self.cycles: list[OfferCycle] = []

    def reset(self) -> None:
        """A new leadership: nothing held, nothing pending, no agent known lost."""
        self.drop_all()
        self._lost_agents.clear()
        self.pending = False
        self._suppressed = False

    # ---- offers in and out --------------------------------------------------------------
    def receive(self, offers: list[Offer], now: float) -> list[str]:
        """Hold the offers of a new cycle; returns the ids to decline (nothing is pending,
        or the agent is known lost)."""
        self.cycles.append(OfferCycle(received=now, offers=len(offers)))
        del self.cycles[:-CYCLES_KEPT]
        decline: list[str] = []
        for offer in offers:
            if not self.pending or offer.agent_id in self._lost_agents:
                decline.append(offer.id)
                continue
            self._offers[offer.id] = offer
            self._by_agent.setdefault(offer.agent_id, set()).add(offer.id)
        return decline

    def rescind(self, offer_id: str) -> None:
        offer = self._offers.pop(offer_id, None)
        if offer is not None:
            held = self._by_agent.get(offer.agent_id)
            if held is not None:
                held.discard(offer_id)
                if not held:
                    del self._by_agent[offer.agent_id]

    def drop_all(self) -> None:
        """Forget every held offer (the connection went away: Mesos rescinds them all)."""
        self._offers.clear()
        self._by_agent.clear()

    def take_agent(self, agent_id: str) -> list[Offer]:
        """Every offer held for an agent, no longer held: they are being accepted."""
        taken = [self._offers.pop(o, None) for o in self._by_agent.pop(agent_id, set())]
        return [o for o in taken if o is not None]

    def take_stale(self, now: float, hold_seconds: float) -> list[str]:
        """Offers held for `hold_seconds` or more, no longer held: to be declined."""
        stale = [o.id for o in self._offers.values() if now - o.received >= hold_seconds]
        for offer_id in stale:
            self.rescind(offer_id)
        return stale

    def by_agent(self) -> dict[str, list[Offer]]:
        """The held offers of every agent that has any."""
        out: dict[str, list[Offer]] = {}
        for agent_id, offer_ids in self._by_agent.items():
            offers = [self._offers[o] for o in offer_ids if o in self._offers]
            if offers:
                out[agent_id] = offers
        return out

    # ---- agents -------------------------------------------------------------------------
    def agent_lost(self, agent_id: str) -> None:
        """Mesos says the agent is gone: drop its offers and decline any it still sends."""
        self._lost_agents.add(agent_id)
        for offer_id in self._by_agent.pop(agent_id, set()):
            self._offers.pop(offer_id, None)

    def take_lost_agents(self) -> set[str]:
        lost, self._lost_agents = set(self._lost_agents), set()
        return lost

    # ---- wanting offers -----------------------------------------------------------------
    def subscribed(self) -> None:
        """A (re)subscription clears suppression on Mesos's side."""
        self._suppressed = False

    def want(self, pending: bool, connected: bool) -> OfferWish:
        """Revive when work arrives, suppress (and decline what is held) when none is left."""
        was, self.pending = self.pending, pending
        # offers that came while nothing was pending were declined (their agents are
        # filtered for a while): every time work arrives, revive clears the filters
        revive = connected and pending and (self._suppressed or not was)
        suppress = connected and not pending and not self._suppressed
        if revive:
            self._suppressed = False
        if suppress:
            self._suppressed = True
        held = [] if pending else list(self._offers)
        if held:
            self.drop_all()
        return OfferWish(revive=revive, suppress=suppress and not revive, decline=held)

    # ---- cycle bookkeeping --------------------------------------------------------------
    def answered(self, accepted: int = 0, declined: int = 0) -> None:
        """Offers of the newest cycle were accepted or declined; it is answered when all
        its offers are."""
        if not self.cycles:
            return
        cycle = self.cycles[-1]
        cycle.accepted += accepted
        cycle.declined += declined
        if cycle.answered is None and cycle.accepted + cycle.declined >= cycle.offers:
            cycle.answered = time.monotonic()
