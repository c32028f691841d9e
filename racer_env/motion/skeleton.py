"""The skeleton type and forward kinematics.

A :class:`Skeleton` is the static part of a BVH hierarchy: joint names in depth-first order (parents
before children), parent indices, rest offsets, the channel list of every joint and End Site offsets.
``unit_mm`` says how many millimetres one offset unit is (BVH files do not record their unit), so that
metrics and rendering work in millimetres whatever the source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from racer_env.motion.rotations import check_euler_order, rotvec_to_matrix

POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
ROTATION_CHANNELS = ("Xrotation", "Yrotation", "Zrotation")
UNITS_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "inch": 25.4}


@dataclass(frozen=True, eq=False)
class Skeleton:
    """Joint hierarchy with rest offsets and per-joint BVH channels.

    Attributes:
        names: joint names, parents before children (BVH depth-first order).
        parents: parent index of every joint, -1 for the root.
        offsets: (J, 3) rest offset of every joint from its parent, in file units.
        channels: per joint, its BVH channel names in file order (0, 3 or 6 of them, any order).
        end_sites: joint index -> (3,) offset of its End Site, kept so written files match the source.
        unit_mm: millimetres per offset unit.
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]
    end_sites: dict[int, np.ndarray] = field(default_factory=dict)
    unit_mm: float = 10.0

    def __post_init__(self) -> None:
        n = len(self.names)
        offsets = np.asarray(self.offsets, dtype=np.float64)
        object.__setattr__(self, "offsets", offsets)
        if offsets.shape != (n, 3):
            raise ValueError(f"offsets must have shape ({n}, 3) for {n} joints, got {offsets.shape}")
        if len(self.parents) != n or len(self.channels) != n:
            raise ValueError(
                f"names, parents and channels must have one entry per joint: "
                f"{n}, {len(self.parents)}, {len(self.channels)}"
            )
        if len(set(self.names)) != n:
            dup = sorted({x for x in self.names if self.names.count(x) > 1})
            raise ValueError(f"joint names must be unique, repeated: {dup}")
        for j, p in enumerate(self.parents):
            if not (p == -1 if j == 0 else 0 <= p < j):
                raise ValueError(f"joint {self.names[j]!r}: parent index {p} must precede it (root has -1)")
        for j, chans in enumerate(self.channels):
            rot = [c for c in chans if c in ROTATION_CHANNELS]
            unknown = [c for c in chans if c not in ROTATION_CHANNELS + POSITION_CHANNELS]
            if unknown or len(rot) not in (0, 3) or len(set(chans)) != len(chans):
                raise ValueError(
                    f"joint {self.names[j]!r}: channels {list(chans)} must be distinct names from "
                    f"{POSITION_CHANNELS + ROTATION_CHANNELS} with 0 or 3 rotation channels"
                )
        if not self.unit_mm > 0:
            raise ValueError(f"unit_mm must be positive, got {self.unit_mm}")

    # -- structure -----------------------------------------------------------------------------------
    @property
    def n_joints(self) -> int:
        return len(self.names)

    @property
    def n_channels(self) -> int:
        return sum(len(c) for c in self.channels)

    def index(self, name: str) -> int:
        """Index of joint ``name``; a KeyError lists the joints that exist."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"no joint named {name!r}; joints are {list(self.names)}") from None

    def rotation_order(self, joint: int) -> str:
        """The joint's Euler order as axis letters in channel order (e.g. 'ZXY'); 'ZXY' if it has none."""
        axes = "".join(c[0] for c in self.channels[joint] if c in ROTATION_CHANNELS)
        return check_euler_order(axes) if axes else "ZXY"

    def positions(self, rotations: np.ndarray) -> np.ndarray:
        """(T, J, 3) rotation vectors (each joint relative to its parent, the corpus's representation) -> (T, J, 3)
        joint positions in millimetres, the root at its rest offset: forward kinematics of a take."""
        return forward_kinematics(self, rotvec_to_matrix(rotations))[0]

    def children(self, joint: int) -> list[int]:
        return [j for j, p in enumerate(self.parents) if p == joint]

    def path_from_root(self, joint: int) -> list[int]:
        """Joint indices from the root to ``joint`` inclusive."""
        path = [joint]
        while self.parents[path[-1]] != -1:
            path.append(self.parents[path[-1]])
        return path[::-1]

    def subset(self, joints: list[int]) -> Skeleton:
        """The skeleton restricted to ``joints``, which must be closed under parent (contain every ancestor).

        Order is kept; offsets are unchanged because no joint is skipped.
        """
        keep = sorted(set(joints))
        remap = {old: new for new, old in enumerate(keep)}
        for j in keep:
            p = self.parents[j]
            if p != -1 and p not in remap:
                raise ValueError(f"subset must contain the parent of {self.names[j]!r} ({self.names[p]!r})")
        return Skeleton(
            names=tuple(self.names[j] for j in keep),
            parents=tuple(-1 if self.parents[j] == -1 else remap[self.parents[j]] for j in keep),
            offsets=self.offsets[keep].copy(),
            channels=tuple(self.channels[j] for j in keep),
            end_sites={remap[j]: off.copy() for j, off in self.end_sites.items() if j in remap},
            unit_mm=self.unit_mm,
        )

    # -- serialisation -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "names": list(self.names),
            "parents": list(self.parents),
            "offsets": self.offsets.tolist(),
            "channels": [list(c) for c in self.channels],
            "end_sites": {str(j): off.tolist() for j, off in self.end_sites.items()},
            "unit_mm": self.unit_mm,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Skeleton:
        return cls(
            names=tuple(d["names"]),
            parents=tuple(int(p) for p in d["parents"]),
            offsets=np.asarray(d["offsets"], dtype=np.float64),
            channels=tuple(tuple(c) for c in d["channels"]),
            end_sites={int(j): np.asarray(off, dtype=np.float64) for j, off in d.get("end_sites", {}).items()},
            unit_mm=float(d.get("unit_mm", 10.0)),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def same_layout(self, other: Skeleton) -> bool:
        """True when joint names and parents match (offsets may differ between speakers)."""
        return self.names == other.names and self.parents == other.parents


def forward_kinematics(
    skeleton: Skeleton,
    local_rotations: np.ndarray,
    root_positions: np.ndarray | None = None,
    translations: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Global joint positions (mm) and rotations from local rotations, vectorised over frames.

    Args:
        skeleton: the hierarchy; positions are scaled by ``skeleton.unit_mm``.
        local_rotations: (T, J, 3, 3) rotation of each joint relative to its parent.
        root_positions: (T, 3) root translation in file units; the root offset if None.
        translations: (T, J, 3) per-joint translation in file units (for joints with position
            channels); the rest offsets if None. Overrides ``root_positions`` when given.

    Returns:
        positions (T, J, 3) in millimetres and global rotations (T, J, 3, 3).
    """
    rots = np.asarray(local_rotations, dtype=np.float64)
    n_frames, n_joints = rots.shape[:2]
    if rots.shape[1:] != (skeleton.n_joints, 3, 3):
        raise ValueError(f"local_rotations must be (T, {skeleton.n_joints}, 3, 3), got {rots.shape}")
    if translations is None:
        translations = np.broadcast_to(skeleton.offsets, (n_frames, n_joints, 3)).copy()
        if root_positions is not None:
            translations[:, 0] = root_positions
    glob_rot = np.empty_like(rots)  # (T, J, 3, 3)
    glob_pos = np.empty((n_frames, n_joints, 3))  # (T, J, 3)
    for j, p in enumerate(skeleton.parents):
        if p == -1:
            glob_rot[:, j] = rots[:, j]
            glob_pos[:, j] = translations[:, j]
        else:
            glob_rot[:, j] = glob_rot[:, p] @ rots[:, j]
            glob_pos[:, j] = glob_pos[:, p] + np.einsum("tik,tk->ti", glob_rot[:, p], translations[:, j])
    return glob_pos * skeleton.unit_mm, glob_rot
