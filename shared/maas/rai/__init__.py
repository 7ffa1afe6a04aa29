"""Responsible AI: explanations, model cards, fairness gates, privacy masking, audit trail and drift.

Modules (import the one you need; none imports TensorFlow, and only ``card.render_html`` imports
matplotlib, lazily):

- ``maas.rai.explain``  Kernel SHAP / permutation Shapley attributions from batched forward passes,
  exactly complete (sum = f(x) - f(baseline)); baseline = training means from the manifest. The
  estimators themselves live in ``maas.rai.shapley``.
- ``maas.rai.card``     model cards: ``build``, ``markdown``, ``html`` (Jinja2, autoescaped), ``plots``,
  ``negotiation`` (Accept).
- ``maas.rai.fairness`` per-group metrics, demographic parity / equalized odds gaps, gate checks.
- ``maas.rai.mask``     Powertools data masking of the manifest's sensitive fields.
- ``maas.rai.audit``    one audit record per request / file / message / promotion (the record builders);
  ``trail`` (buffer, log copy, S3 object), ``identity`` (caller, outcome), ``hashing`` (input digests),
  ``request`` (one request's notes), ``hooks`` (the serving functions' one-line calls).
- ``maas.rai.drift``    PSI per feature against the training fingerprint, EMF metrics.
"""
