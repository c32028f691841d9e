"""Upper-body selection by role: the root, the chain from root to head, both arm chains to the hand.

A skeleton is mapped by finding three end joints by name (head, left hand, right hand) and taking the
union of their paths from the root. Joints in between are kept (nothing is skipped, so rotations and
offsets are unchanged), fingers and legs are dropped. The arm chain starts where it leaves the spine
(collar/shoulder). Names are compared after removing a namespace prefix (``mixamorig:``,
``mixamorig1:``, ``Character1_``) and case.

Known naming schemes (joint count with the standard skeleton):

=========================  ===========  ================  =================  ==
scheme                     head         left hand         right hand         J
=========================  ===========  ================  =================  ==
Trinity / GENEA            Head         LeftHand          RightHand          16
BEAT                       Head         LeftHand          RightHand          16
CMU "MotionBuilder"        Head         LeftHand          RightHand          15
CMU "3dsMax"               Head         LeftWrist         RightWrist         15
Mixamo                     mixamorig:Head  mixamorig:LeftHand  mixamorig:RightHand  --
=========================  ===========  ================  =================  ==
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

import numpy as np

from racer_env.errors import RacerError
from racer_env.motion.skeleton import Skeleton

if TYPE_CHECKING:
    from racer_env.motion.bvh import Bvh

#: role -> accepted names (compared lower-case, namespace removed). Order = preference.
ROLE_ALIASES: dict[str, tuple[str, ...]] = {
    "head": ("head",),
    "left_hand": ("lefthand", "leftwrist", "l_wrist", "lwrist", "hand_l", "left_wrist", "l_hand"),
    "right_hand": ("righthand", "rightwrist", "r_wrist", "rwrist", "hand_r", "right_wrist", "r_hand"),
}

#: the scheme names this module recognises, for error messages and docs.
KNOWN_SCHEMES = ("Trinity/GENEA", "BEAT", "CMU MotionBuilder", "CMU 3dsMax", "Mixamo")

_PREFIX = re.compile(r"^(?:[A-Za-z0-9_]*:|Character\d*_|Bip\d*[ _])")


class UnmappableSkeletonError(RacerError):
    """The skeleton lacks a joint for one or more upper-body roles."""


def canonical_name(name: str) -> str:
    """Lower-case joint name with any namespace prefix (``mixamorig:``, ``Character1_``) removed."""
    return _PREFIX.sub("", name).lower()


def same_joints(a: Skeleton, b: Skeleton) -> bool:
    """True when two skeletons have the same joints and parents, comparing names as :func:`canonical_name` does (a
    take exported with a ``mixamorig:`` prefix is the same layout as one without)."""
    return a.parents == b.parents and [canonical_name(n) for n in a.names] == [canonical_name(n) for n in b.names]


def find_roles(skeleton: Skeleton, source: str = "skeleton") -> dict[str, int]:
    """Map every role to a joint index; raise :class:`UnmappableSkeletonError` listing what is missing."""
    canon = [canonical_name(n) for n in skeleton.names]
    found: dict[str, int] = {}
    missing: list[str] = []
    for role, aliases in ROLE_ALIASES.items():
        hit = next((canon.index(a) for a in aliases if a in canon), None)
        if hit is None:
            missing.append(f"{role} (one of {list(aliases)})")
        else:
            found[role] = hit
    if missing:
        raise UnmappableSkeletonError(
            f"{source}: cannot map the upper body; missing {', '.join(missing)}. "
            f"Known naming schemes: {', '.join(KNOWN_SCHEMES)}. Joints present: {list(skeleton.names)}"
        )
    return found


def upper_body_joints(skeleton: Skeleton, source: str = "skeleton") -> list[int]:
    """Indices (in skeleton order) of the root, the root-to-head chain and both arm chains to the hand."""
    roles = find_roles(skeleton, source)
    joints: set[int] = set()
    for role in ("head", "left_hand", "right_hand"):
        joints.update(skeleton.path_from_root(roles[role]))
    left, right = (set(skeleton.path_from_root(roles[r])) for r in ("left_hand", "right_hand"))
    if roles["left_hand"] in right or roles["right_hand"] in left:
        raise UnmappableSkeletonError(f"{source}: one hand is an ancestor of the other; check the joint names")
    return sorted(joints)


def read_upper_body(path: str | os.PathLike, fps: float, unit_mm: float = 10.0) -> tuple[Skeleton, np.ndarray, Bvh]:
    """A BVH take's upper body at ``fps``: (its upper-body skeleton, (T, J, 3) local rotation vectors, the file).

    The one reading of a take that corpus import and a video's reference share: the joints of
    :func:`upper_body_joints`, Euler angles in each joint's own order, resampled by slerp."""
    from racer_env.motion.bvh import read_bvh
    from racer_env.motion.resample import resample_rotations
    from racer_env.motion.rotations import euler_to_matrix, matrix_to_rotvec

    bvh = read_bvh(path, unit_mm=unit_mm)
    joints = upper_body_joints(bvh.skeleton, source=str(path))
    skeleton = bvh.skeleton.subset(joints)
    angles = bvh.euler_angles()[:, joints]  # (T_src, J, 3) degrees
    mats = np.stack([euler_to_matrix(angles[:, i], skeleton.rotation_order(i)) for i in range(len(joints))], 1)
    return skeleton, matrix_to_rotvec(resample_rotations(mats, bvh.fps, fps)), bvh  # (T, J, 3)


def select_upper_body(skeleton: Skeleton, local_rotations: np.ndarray, source: str = "skeleton"):
    """Restrict a skeleton and its (T, J, 3, 3) local rotations to the upper body.

    Returns:
        (upper skeleton, (T, J_upper, 3, 3) rotations, selected joint indices in the source skeleton).
    """
    joints = upper_body_joints(skeleton, source)
    return skeleton.subset(joints), np.asarray(local_rotations)[:, joints], joints
