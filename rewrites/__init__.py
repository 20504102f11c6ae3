"""Graph rewrites: the generic pattern engine (``engine``), the op-aware patterns and helpers
the rule sets share (``patterns``), symbolic shapes (``shapes``), the rule sets
(``canonicalize``, ``stabilize``, ``specialize``), fusion (``fusion``), forward identities
(``identity``) and the pass list (``passes``)."""
