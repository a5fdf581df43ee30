"""Tools of the committed studies, each run as ``python -m bench.studies.<name> ...``: the rules
that chose a default from a study (``orientation_rule``, ``ablation_rule``, ``prior_recipe_rule``;
each module's docstring and constants are the rule, stated and committed before that study's
cells ran), the measurement of the regression gate's error rates (``gate_error_rates``) and the
training of the pinned domain classifiers (``pin_domain_classifiers``)."""

from __future__ import annotations


def print_and_write(text: str, out: str | None) -> int:
    """A study tool's end: print its Markdown and, when ``out`` is given, also write it there
    (whole or not at all); returns the exit status 0."""
    from bench.cache import atomic_write_text

    print(text)
    if out:
        atomic_write_text(out, text)
    return 0
