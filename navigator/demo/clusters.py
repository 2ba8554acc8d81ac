"""The simulated fleet: believable cluster names with region and environment metadata."""

from __future__ import annotations

from dataclasses import dataclass, field

ENVIRONMENTS = ("production", "staging", "development")
#: Name suffix -> cloud region; a name like ``production-east`` reads as a real fleet.
REGIONS = (
    ("east", "us-east-1"),
    ("west", "us-west-2"),
    ("central", "eu-central-1"),
    ("north", "eu-north-1"),
    ("south", "sa-east-1"),
    ("asia", "ap-southeast-1"),
)


@dataclass(frozen=True, slots=True)
class SimulatedCluster:
    id: str
    metadata: dict[str, str] = field(default_factory=dict)
    #: Seeds the simulator so each cluster has its own but reproducible objects.
    seed: int = 0


def fleet(count: int) -> list[SimulatedCluster]:
    """``count`` distinct clusters, environments and regions interleaved.

    The first three are ``production-east``, ``staging-west``,
    ``development-central``; past the 18 combinations, names get a number.
    """
    if count < 1:
        raise ValueError("a fleet needs at least one cluster")
    combos = [
        (ENVIRONMENTS[i % len(ENVIRONMENTS)], REGIONS[(i + i // len(REGIONS)) % len(REGIONS)])
        for i in range(len(ENVIRONMENTS) * len(REGIONS))
    ]
    clusters = []
    for i in range(count):
        environment, (suffix, region) = combos[i % len(combos)]
        round_ = i // len(combos)
        name = f"{environment}-{suffix}" + (f"-{round_ + 1}" if round_ else "")
        metadata = {"environment": environment, "region": region, "provider": "kubesim"}
        clusters.append(SimulatedCluster(id=name, metadata=metadata, seed=1000 + i))
    return clusters
