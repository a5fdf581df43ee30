"""Tools of the committed studies, each run as ``python -m bench.studies.<name> ...``: the rules
that chose a default from a study (``orientation_rule``, ``ablation_rule``; each module's
docstring and constants are the rule, stated and committed before that study's cells ran) and
the measurement of the regression gate's error rates (``gate_error_rates``) and the
training of the pinned domain classifiers (``pin_domain_classifiers``)."""
