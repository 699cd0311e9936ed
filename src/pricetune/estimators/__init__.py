"""The estimators: the sktime forecaster and its scikit-learn twins."""
