"""The assembled network (normalise, patch, backbone, head), how it is
built from the plugins, and quantile arithmetic on its outputs."""

#: per-window normalisations of :class:`~pricetune.nn.model.PatchForecastModel`
NORMALIZATIONS = ("last", "mean")
