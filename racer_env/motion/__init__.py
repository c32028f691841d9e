"""Motion representations: rotations, skeletons, forward kinematics, BVH I/O, upper-body selection, resampling."""
