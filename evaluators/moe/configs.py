"""Expert-parallel deployments: how many experts, physical slots, groups, nodes and GPUs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EpConfig:
    """One expert-parallel deployment of an MoE model.

    ``replicas`` physical expert slots are spread GPU-major over ``gpus`` GPUs
    (``replicas // gpus`` per GPU); ``groups`` is the model's expert-group
    count (DeepSeek-V3 routes to 4 of 8 groups), ``nodes`` the machine count.
    """

    name: str
    experts: int
    replicas: int
    groups: int
    nodes: int
    gpus: int

    @property
    def slots_per_gpu(self) -> int:
        return self.replicas // self.gpus

    @property
    def hierarchical(self) -> bool:
        """DeepSeek's EPLB keeps groups on nodes only when groups divide evenly."""
        return self.groups % self.nodes == 0

    def problem(self) -> str | None:
        """Why this deployment is impossible, or None."""
        for field in ("experts", "replicas", "groups", "nodes", "gpus"):
            if getattr(self, field) < 1:
                return f"{field} must be at least 1, got {getattr(self, field)}"
        if self.replicas < self.experts:
            return f"replicas ({self.replicas}) must be at least experts ({self.experts})"
        if self.replicas % self.gpus:
            return f"replicas ({self.replicas}) must be a multiple of gpus ({self.gpus})"
        if self.gpus % self.nodes:
            return f"gpus ({self.gpus}) must be a multiple of nodes ({self.nodes})"
        if self.experts % self.groups:
            return f"experts ({self.experts}) must be a multiple of groups ({self.groups})"
        return None

    def args(self) -> tuple[int, int, int, int]:
        """The last four arguments of ``rebalance_experts``."""
        return self.replicas, self.groups, self.nodes, self.gpus


# DeepSeek-V3: 256 routed experts in 8 groups; 288 slots = 9 per GPU on 4 nodes x 8 GPUs.
V3 = EpConfig("v3", experts=256, replicas=288, groups=8, nodes=4, gpus=32)
# A Qwen3-MoE-like model (128 experts, no groups) on 2 nodes: DeepSeek's global policy.
QWEN = EpConfig("qwen", experts=128, replicas=144, groups=1, nodes=2, gpus=16)
# Small deployments where CP-SAT proves the best placement of a window.
SMALL = EpConfig("small64", experts=64, replicas=72, groups=4, nodes=2, gpus=8)
TINY = EpConfig("tiny16", experts=16, replicas=20, groups=2, nodes=1, gpus=4)
CONFIGS = {c.name: c for c in (V3, QWEN, SMALL, TINY)}


def auto_config(experts: int, name: str = "trace") -> EpConfig:
    """A default deployment for a trace with ``experts`` experts.

    256 experts -> the V3 deployment; otherwise one node of 8 GPUs with one
    redundant slot per GPU, and no groups.
    """
    if experts == V3.experts:
        return EpConfig(name, V3.experts, V3.replicas, V3.groups, V3.nodes, V3.gpus)
    return EpConfig(name, experts, experts + 8, 1, 1, 8)
