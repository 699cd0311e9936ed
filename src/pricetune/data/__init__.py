"""The data side of fitting: the fitted series, windows cut from them,
their split for validation, and batches on the training device."""
