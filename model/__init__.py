"""diffuse-fit: a Bayesian binned-likelihood fit of the diffuse astrophysical neutrino flux."""

__version__ = "0.1.0"
