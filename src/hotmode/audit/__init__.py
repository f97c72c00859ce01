"""Proving each mode is what it claims: hotmode's mode rules plus compose-lint's hardening rules.

`checker.check(stacks)` merges each stack with Compose, runs the rules, locates every finding at
the file and line that introduced it (`sources`) and returns a `Report`; `report` renders it as
text, JSON or SARIF.
"""
