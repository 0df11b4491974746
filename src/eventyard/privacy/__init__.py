"""Privacy: consent, PII controls, and regulations (deletion and suppression).

- consent categories and the per-destination consent decision (``consent``), PII classifiers
  and rules (``pii_classify``, ``pii_rules``, ``pii_scan``), their cached configuration
  (``config``): used by the unify stages ``unify.consent`` and ``unify.pii``, the fan-out
  (``route.consent``, ``route.pii_transform``) and the control plane;
- regulations: requests to delete or suppress users and their propagation to every store.

See docs/privacy.md.
"""
