"""Named random streams for common random numbers.

Every stochastic process draws from its own stream, derived from the run's root seed and the
process name (and, for daily processes, the day). So switching a channel on, or adding an
officer, changes only the draws of the processes it touches, from the day it acts: incident
arrivals before anyone reacts are identical between two scenarios with the same seed. The
derivation uses ``numpy.random.SeedSequence`` spawn keys, the same mechanism experiments use
to give replication ``i`` its seed.
"""

from __future__ import annotations

import zlib

import numpy as np

# Stable numeric ids for process names: crc32 is fixed across Python versions and platforms,
# unlike hash(), so the same name always gives the same stream.
def _name_key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def root_sequence(rng: int | np.random.SeedSequence | np.random.Generator | None) -> np.random.SeedSequence:
    """Turn the model's ``rng`` argument into a root ``SeedSequence``.

    An int or a SeedSequence is used as is; a Generator contributes fresh entropy drawn from
    it; None draws fresh OS entropy (the run is still reproducible from the recorded
    ``SeedSequence.entropy``).
    """
    if isinstance(rng, np.random.SeedSequence):
        return rng
    if isinstance(rng, np.random.Generator):
        return np.random.SeedSequence(int(rng.integers(0, 2**63 - 1)))
    if rng is None:
        return np.random.SeedSequence()
    if isinstance(rng, (int, np.integer)):
        if rng < 0:
            raise ValueError(f"seed must be a non-negative integer, got {rng}")
        return np.random.SeedSequence(int(rng))
    raise TypeError(f"rng must be an int, SeedSequence, Generator or None, not {type(rng).__name__}")


class Streams:
    """Named, independent random streams derived from one root seed.

    ``streams.get("patrol")`` is one persistent Generator per name (for set-up draws);
    ``streams.daily("arrivals", day)`` is a fresh Generator for that process on that day, so a
    change on day d cannot shift any draw of days before d.
    """

    def __init__(self, root: np.random.SeedSequence):
        self.root = root
        self._persistent: dict[str, np.random.Generator] = {}

    def _child(self, *key: int) -> np.random.SeedSequence:
        return np.random.SeedSequence(
            entropy=self.root.entropy,
            spawn_key=tuple(self.root.spawn_key) + key,
            pool_size=self.root.pool_size,
        )

    def get(self, name: str) -> np.random.Generator:
        gen = self._persistent.get(name)
        if gen is None:
            gen = np.random.Generator(np.random.PCG64(self._child(_name_key(name))))
            self._persistent[name] = gen
        return gen

    def daily(self, name: str, day: int) -> np.random.Generator:
        return np.random.Generator(np.random.PCG64(self._child(_name_key(name), 1, int(day))))

    @property
    def seed_repr(self) -> dict:
        """What to record so the run can be reproduced."""
        return {"entropy": int(self.root.entropy) if isinstance(self.root.entropy, int) else str(self.root.entropy),
                "spawn_key": list(self.root.spawn_key)}
