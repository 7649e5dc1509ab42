"""The likelihoods a fit can use, by name: NumPy functions ``(templates, counts, params,
names, bins) -> (ln L, gradient, Hessian)``, exact for the tables.

* ``poisson``: the workshop's ``sum_b k_b ln lam_b - lam_b - lgamma(k_b + 1)``
  (:func:`diffuse_fit.binned.curvature.loglike_derivatives`);
* ``say``: the SAY likelihood of a finite simulation (:func:`diffuse_fit.binned.say.say_loglike_derivatives`;
  needs ``templates.variance``).
"""

from __future__ import annotations

from diffuse_fit.binned.curvature import loglike_derivatives
from diffuse_fit.binned.say import say_loglike_derivatives

LIKELIHOODS = {"poisson": loglike_derivatives, "say": say_loglike_derivatives}
