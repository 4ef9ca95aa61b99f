"""A generated city road network: a street grid with arterials and a ring motorway.

The network is a directed graph whose nodes are intersections and whose links are
:class:`contracts.roads.RoadSegment` s, one per direction of every road between two adjacent
intersections. It is a pure function of :class:`NetworkSpec` (the seed included), so the same
spec always yields the same segments with the same ids, and re-registering it is idempotent.

Layout: ``streets`` east-west and ``streets`` north-south streets ``block_m`` apart, each
intersection jittered a little. Every ``arterial_every``-th street is an arterial (60 or
70 km/h), the other even ones are collectors (50 km/h), the rest local streets (30 or 50 km/h).
A ring motorway (100 or 120 km/h per side) runs ``ring_offset_m`` outside the grid, joined to
every arterial by a ramp.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

from contracts.roads import RoadClass, RoadSegment
from device_sim.errors import ConfigError
from device_sim.geo import LocalFrame, bearing_cdeg
from device_sim.rand import seeded

__all__ = ["LANES", "Link", "NetworkSpec", "Node", "RoadNetwork", "generate_network"]

LANES: Final[dict[RoadClass, int]] = {
    RoadClass.LOCAL: 1,
    RoadClass.COLLECTOR: 1,
    RoadClass.ARTERIAL: 2,
    RoadClass.MOTORWAY: 3,
}
_RANK: Final[dict[RoadClass, int]] = {
    RoadClass.LOCAL: 0,
    RoadClass.COLLECTOR: 1,
    RoadClass.ARTERIAL: 2,
    RoadClass.MOTORWAY: 3,
}
_MAX_RING_PIECE_M: Final = 600.0


@dataclass(frozen=True, slots=True)
class NetworkSpec:
    """What to generate. The defaults: a 12 x 12 grid (about 2.4 km square) in Berlin."""

    centre_lat: float = 52.52
    centre_lon: float = 13.405
    streets: int = 12
    block_m: float = 220.0
    arterial_every: int = 4
    ring: bool = True
    ring_offset_m: float = 400.0
    jitter_m: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not -80.0 <= self.centre_lat <= 80.0 or not -179.0 <= self.centre_lon <= 179.0:
            raise ConfigError("network centre: latitude in [-80, 80], longitude in [-179, 179]")
        if not 3 <= self.streets <= 60:
            raise ConfigError(f"network streets: {self.streets} outside [3, 60]")
        if not 100.0 <= self.block_m <= 1000.0:
            raise ConfigError(f"network block_m: {self.block_m} outside [100, 1000]")
        if not 2 <= self.arterial_every <= self.streets:
            raise ConfigError("network arterial_every: between 2 and the number of streets")
        if not 200.0 <= self.ring_offset_m <= 5000.0:
            raise ConfigError(f"network ring_offset_m: {self.ring_offset_m} outside [200, 5000]")
        if not 0.0 <= self.jitter_m <= self.block_m / 10:
            raise ConfigError("network jitter_m: between 0 and a tenth of block_m")


@dataclass(frozen=True, slots=True)
class Node:
    """An intersection. ``classes``: the classes of the roads that meet here, best first."""

    node_id: int
    lat_e7: int
    lon_e7: int
    classes: tuple[RoadClass, ...]
    signalised: bool
    """Traffic lights: two non-local grid streets cross here."""


@dataclass(frozen=True, slots=True)
class Link:
    """One direction of a road between two adjacent nodes: ``segment.segment_id == index + 1``."""

    index: int
    segment: RoadSegment
    from_node: int
    to_node: int
    length_m: float
    heading_cdeg: int
    lanes: int


@dataclass(frozen=True, slots=True)
class RoadNetwork:
    """Nodes, directed links and their adjacency. Build with :func:`generate_network`."""

    spec: NetworkSpec
    frame: LocalFrame
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]
    out_links: tuple[tuple[int, ...], ...]
    in_links: tuple[tuple[int, ...], ...]

    @property
    def segments(self) -> list[RoadSegment]:
        """Every directed segment, by id (what ``contracts.roads.save_segments`` stores)."""
        return [link.segment for link in self.links]

    def position_e7(self, link: Link, pos_m: float) -> tuple[float, float]:
        """The point ``pos_m`` metres along ``link`` (unrounded degrees x 1e7)."""
        s = link.segment
        f = pos_m / link.length_m
        return s.a_lat_e7 + (s.b_lat_e7 - s.a_lat_e7) * f, s.a_lon_e7 + (
            s.b_lon_e7 - s.a_lon_e7
        ) * f


@dataclass(slots=True)
class _Road:
    """An undirected road piece before it becomes two links."""

    a: int
    b: int
    name: str
    road_class: RoadClass
    speed_limit_kmh: int


def _street_class(index: int, spec: NetworkSpec) -> RoadClass:
    if index % spec.arterial_every == spec.arterial_every // 2:
        return RoadClass.ARTERIAL
    return RoadClass.COLLECTOR if index % 2 == 0 else RoadClass.LOCAL


def _street_limit(road_class: RoadClass, rng: random.Random) -> int:
    if road_class is RoadClass.ARTERIAL:
        return rng.choice((60, 70))
    if road_class is RoadClass.COLLECTOR:
        return 50
    return rng.choice((30, 30, 50))


def generate_network(spec: NetworkSpec | None = None) -> RoadNetwork:
    """The network for ``spec`` (default :class:`NetworkSpec`); deterministic for a spec."""
    spec = spec or NetworkSpec()
    rng = seeded(spec.seed, "network")
    frame = LocalFrame(spec.centre_lat, spec.centre_lon)
    n = spec.streets
    half = (n - 1) / 2 * spec.block_m
    jitter = spec.jitter_m
    # Local metres of every node by node id; grid node (i, j) is column i, row j.
    grid = {(i, j): j * n + i for j in range(n) for i in range(n)}
    points = [
        (i * spec.block_m - half + rng.uniform(-jitter, jitter),
         j * spec.block_m - half + rng.uniform(-jitter, jitter))
        for (i, j) in grid
    ]  # fmt: skip
    classes = [_street_class(k, spec) for k in range(n)]
    ew_limits = [_street_limit(c, rng) for c in classes]
    ns_limits = [_street_limit(c, rng) for c in classes]
    roads = [  # east-west streets, then north-south avenues
        _Road(grid[i, j], grid[i + 1, j], f"Street {j + 1}", classes[j], ew_limits[j])
        for j in range(n) for i in range(n - 1)
    ] + [
        _Road(grid[i, j], grid[i, j + 1], f"Avenue {i + 1}", classes[i], ns_limits[i])
        for i in range(n) for j in range(n - 1)
    ]  # fmt: skip
    if spec.ring:
        _add_ring(spec, rng, points, grid, classes, ew_limits, ns_limits, roads)
    signalised = {
        grid[i, j]
        for (i, j) in grid
        if classes[i] is not RoadClass.LOCAL and classes[j] is not RoadClass.LOCAL
    }
    return _assemble(spec, frame, points, roads, signalised)


def _add_ring(
    spec: NetworkSpec,
    rng: random.Random,
    points: list[tuple[float, float]],
    grid: dict[tuple[int, int], int],
    classes: list[RoadClass],
    ew_limits: list[int],
    ns_limits: list[int],
    roads: list[_Road],
) -> None:
    """A chamfered-rectangle ring motorway with a ramp from each arterial's end."""
    n = spec.streets
    half = (n - 1) / 2 * spec.block_m
    h, c = half + spec.ring_offset_m, spec.ring_offset_m
    # Arterials on the grid's edge would meet the ring at a corner: they get no ramp.
    arterials = [k for k in range(1, n - 1) if classes[k] is RoadClass.ARTERIAL]
    coord = [k * spec.block_m - half for k in range(n)]
    # Each side counterclockwise: its start, then (x, y, grid node, street) of each ramp.
    starts = [(-h + c, -h), (h, -h + c), (h - c, h), (-h, h - c)]
    ramps: list[list[tuple[float, float, int, str, int]]] = [
        [(coord[i], -h, grid[i, 0], f"Avenue {i + 1}", ns_limits[i]) for i in arterials],
        [(h, coord[j], grid[n - 1, j], f"Street {j + 1}", ew_limits[j]) for j in arterials],
        [(coord[i], h, grid[i, n - 1], f"Avenue {i + 1}", ns_limits[i]) for i in arterials][::-1],
        [(-h, coord[j], grid[0, j], f"Street {j + 1}", ew_limits[j]) for j in arterials][::-1],
    ]
    ring_limit = [rng.choice((100, 120)) for _ in starts]
    ends = [(h - c, -h), (h, h - c), (-h + c, h), (-h, -h + c)]
    ring_nodes: list[tuple[int, int]] = []  # (node id, side) in ring order
    for side in range(4):
        ring_nodes.append((len(points), side))
        points.append(starts[side])
        for x, y, ramp_from, street, limit in ramps[side]:
            ring_nodes.append((len(points), side))
            points.append((x, y))
            roads.append(
                _Road(ramp_from, len(points) - 1, f"{street} ramp", RoadClass.ARTERIAL, limit)
            )
        ring_nodes.append((len(points), side))
        points.append(ends[side])
    for k, (a, side) in enumerate(ring_nodes):
        b = ring_nodes[(k + 1) % len(ring_nodes)][0]
        _add_ring_piece(points, roads, a, b, ring_limit[side])


def _add_ring_piece(
    points: list[tuple[float, float]], roads: list[_Road], a: int, b: int, limit: int
) -> None:
    """Ring road from node ``a`` to ``b``, split into pieces of at most 600 m."""
    (ax, ay), (bx, by) = points[a], points[b]
    length = ((bx - ax) ** 2 + (by - ay) ** 2) ** 0.5
    pieces = max(1, int(-(-length // _MAX_RING_PIECE_M)))
    previous = a
    for k in range(1, pieces + 1):
        if k == pieces:
            nxt = b
        else:
            nxt = len(points)
            points.append((ax + (bx - ax) * k / pieces, ay + (by - ay) * k / pieces))
        roads.append(_Road(previous, nxt, "Ring A100", RoadClass.MOTORWAY, limit))
        previous = nxt


def _assemble(
    spec: NetworkSpec,
    frame: LocalFrame,
    points: list[tuple[float, float]],
    roads: list[_Road],
    signalised: set[int],
) -> RoadNetwork:
    e7 = [frame.to_e7(x, y) for x, y in points]
    incident: list[set[RoadClass]] = [set() for _ in points]
    links: list[Link] = []
    out_links: list[list[int]] = [[] for _ in points]
    in_links: list[list[int]] = [[] for _ in points]
    for road in roads:
        incident[road.a].add(road.road_class)
        incident[road.b].add(road.road_class)
        for a, b in ((road.a, road.b), (road.b, road.a)):
            index = len(links)
            segment = RoadSegment(
                segment_id=index + 1,
                name=road.name,
                road_class=road.road_class,
                speed_limit_kmh=road.speed_limit_kmh,
                a_lat_e7=e7[a][0],
                a_lon_e7=e7[a][1],
                b_lat_e7=e7[b][0],
                b_lon_e7=e7[b][1],
            )
            (ax, ay), (bx, by) = frame.to_local(*e7[a]), frame.to_local(*e7[b])
            links.append(
                Link(
                    index=index,
                    segment=segment,
                    from_node=a,
                    to_node=b,
                    length_m=segment.length_m,
                    heading_cdeg=bearing_cdeg(bx - ax, by - ay),
                    lanes=LANES[road.road_class],
                )
            )
            out_links[a].append(index)
            in_links[b].append(index)
    nodes = tuple(
        Node(
            node_id=k,
            lat_e7=e7[k][0],
            lon_e7=e7[k][1],
            classes=tuple(sorted(incident[k], key=lambda c: -_RANK[c])),
            signalised=k in signalised,
        )
        for k in range(len(points))
    )
    return RoadNetwork(
        spec=spec,
        frame=frame,
        nodes=nodes,
        links=tuple(links),
        out_links=tuple(tuple(x) for x in out_links),
        in_links=tuple(tuple(x) for x in in_links),
    )
