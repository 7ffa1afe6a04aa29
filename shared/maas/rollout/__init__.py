"""Safe rollouts: weighted canaries (router), per-version stats, the guard, shadow scoring.

The alias record format and its conditional writes live in the model layer (`maas_models.rollout`);
this package holds what the functions do with it.
"""
