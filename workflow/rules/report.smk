"""Figures and tables of the study beyond the knockout table (filled in by the analysis rules)."""


def report_targets():
    return []
