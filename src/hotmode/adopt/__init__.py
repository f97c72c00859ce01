"""Adoption: `hotmode init` and `init --from`, a declaration written from a project's code or its
existing Compose files, with the report of what was carried, and the backup of the old files.

`old` reads the team's files and merges each mode, `companions` carries the services beside the
app, `infer` writes the declaration, `report` says mode by mode what was kept, changed or not
carried; `scaffold` infers a declaration from the code alone; `backup` moves hand-written files
aside before `render --adopt` replaces them.
"""
