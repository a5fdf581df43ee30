"""The verdict of ``rvqvae-bench compare`` for other CI systems: JUnit XML and Markdown.

- :func:`comparison_junit`: JUnit XML as CI systems read it (Jenkins, GitLab, GitHub Actions
  test-report actions, Azure): one ``testsuite`` per scenario, one ``testcase`` per compared
  (model, metric), a ``failure`` for every cell that fails the gate (regressed, missing, or
  measured under another protocol) with the change and its allowance as the message; passing
  cases carry the same line in ``system-out``.
- :func:`comparison_markdown`: a summary fit for a pull-request comment: the verdict, the
  counts, a table of the failing cells, then the improved and new ones.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pandas as pd

from bench.compare import FAILING, OUTCOMES, _change, _number, counts, exit_status

SUITES_NAME = "rvqvae-bench compare"


def _line(row) -> str:
    """One cell's comparison in words: outcome, values, change, allowance, note."""
    allowed = "" if pd.isna(row.allowed) else f" (allowed ±{row.allowed:.4g})"
    note = f"; {row.note}" if isinstance(row.note, str) and row.note else ""
    return (f"{row.outcome}: {row.metric} of {row.model} on {row.scenario}: "
            f"{_number(row.baseline)} -> {_number(row.candidate)}, "
            f"{_change(row.baseline, row.candidate)}{allowed}{note}")


def comparison_junit(result: pd.DataFrame) -> str:
    """The comparison as a JUnit XML document (a ``testsuites`` root)."""
    root = ET.Element("testsuites", name=SUITES_NAME, tests=str(len(result)),
                      failures=str(int(result["outcome"].isin(FAILING).sum())), errors="0",
                      time="0")
    for scenario, part in result.groupby("scenario", sort=True):
        failing = part["outcome"].isin(FAILING)
        suite = ET.SubElement(root, "testsuite", name=str(scenario), tests=str(len(part)),
                              failures=str(int(failing.sum())), errors="0", skipped="0",
                              time="0")
        for row in part.itertuples():
            case = ET.SubElement(suite, "testcase", name=f"{row.model} {row.metric}",
                                 classname=f"rvqvae_bench.{scenario}", time="0")
            if row.outcome in FAILING:
                ET.SubElement(case, "failure", type=str(row.outcome), message=_line(row))
            else:
                ET.SubElement(case, "system-out").text = _line(row)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def comparison_markdown(result: pd.DataFrame, *, baseline: str, candidate: str) -> str:
    """The comparison as Markdown for a pull-request comment."""
    tally = counts(result)
    verdict = "❌ FAIL" if exit_status(result) else "✅ OK"
    lines = [f"### rvqvae-bench compare: {verdict}", "",
             f"Baseline `{baseline}` vs candidate `{candidate}`: "
             + ", ".join(f"{tally[o]} {o}" for o in OUTCOMES) + ".", ""]
    for title, outcomes in (("Failing the gate", FAILING), ("Improved or new", ("improved",
                                                                                "new"))):
        part = result[result["outcome"].isin(outcomes)]
        if part.empty:
            continue
        lines += [f"**{title}** ({len(part)})", "",
                  "| outcome | scenario | model | metric | baseline | candidate | change | "
                  "allowed |", "|---|---|---|---|---:|---:|---:|---:|"]
        for row in part.itertuples():
            allowed = "" if pd.isna(row.allowed) else f"±{row.allowed:.4g}"
            lines.append(f"| {row.outcome} | {row.scenario} | {row.model} | {row.metric} | "
                         f"{_number(row.baseline)} | {_number(row.candidate)} | "
                         f"{_change(row.baseline, row.candidate)} | {allowed} |")
        lines.append("")
    return "\n".join(lines)
