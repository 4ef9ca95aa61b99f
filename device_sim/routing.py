"""Fastest routes (Dijkstra) over a :class:`RoadNetwork`: free-flow driving time plus the
expected wait at lights and junctions.

For each destination the router runs Dijkstra once, backwards over the incoming links, and keeps
the resulting next-hop table: every later route to that destination is a walk along it. A city
of a few hundred intersections therefore costs one search per destination ever used.
"""

from __future__ import annotations

import heapq
import math

from device_sim.network import Link, RoadNetwork
from device_sim.traffic import expected_stop_s

__all__ = ["Router", "free_flow_seconds", "route_seconds"]

_NO_LINK = -1


def free_flow_seconds(link: Link) -> float:
    """Seconds to drive ``link`` at its speed limit."""
    return link.length_m / (link.segment.speed_limit_kmh / 3.6)


def route_seconds(network: RoadNetwork, link: Link) -> float:
    """The routing cost of ``link``: free-flow seconds plus the expected stop at its end."""
    return free_flow_seconds(link) + expected_stop_s(network, link)


class Router:
    """Fastest paths between nodes; deterministic (ties broken by the lower link index)."""

    def __init__(self, network: RoadNetwork) -> None:
        self._network = network
        self._cost = [route_seconds(network, link) for link in network.links]
        self._next_hop: dict[int, tuple[list[int], list[float]]] = {}

    def _tree(self, destination: int) -> tuple[list[int], list[float]]:
        """For every node: the first link of its fastest path to ``destination``, and the time."""
        if (cached := self._next_hop.get(destination)) is not None:
            return cached
        network = self._network
        seconds = [math.inf] * len(network.nodes)
        next_link = [_NO_LINK] * len(network.nodes)
        seconds[destination] = 0.0
        queue: list[tuple[float, int]] = [(0.0, destination)]
        while queue:
            time_here, node = heapq.heappop(queue)
            if time_here > seconds[node]:
                continue
            for index in network.in_links[node]:
                source = network.links[index].from_node
                candidate = time_here + self._cost[index]
                if candidate < seconds[source] or (
                    candidate == seconds[source] and index < next_link[source]
                ):
                    seconds[source] = candidate
                    next_link[source] = index
                    heapq.heappush(queue, (candidate, source))
        self._next_hop[destination] = (next_link, seconds)
        return next_link, seconds

    def route(self, origin: int, destination: int) -> list[int]:
        """Link indices of the fastest path from node ``origin`` to ``destination``.

        Empty when they are the same node. Raises ``ValueError`` if no path exists (the
        generated networks are strongly connected, so this means a broken network).
        """
        next_link, _ = self._tree(destination)
        path: list[int] = []
        node = origin
        while node != destination:
            index = next_link[node]
            if index == _NO_LINK:
                raise ValueError(f"no route from node {origin} to node {destination}")
            path.append(index)
            node = self._network.links[index].to_node
        return path

    def travel_seconds(self, origin: int, destination: int) -> float:
        """Expected seconds of :meth:`route` without congestion (``inf`` if unreachable)."""
        return self._tree(destination)[1][origin]
