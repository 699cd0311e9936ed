"""The assembled network (normalise, patch, backbone, head) and quantile
arithmetic on its outputs."""
