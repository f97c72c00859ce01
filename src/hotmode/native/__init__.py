"""The native runner: a mode run as local processes, without Docker.

`runner` starts, supervises and stops the app's server; `companions` runs the services beside it
(a database in Docker, as a local process, or the declared embedded default); `snapshot` makes
prod's read-only `git archive` tree; `state` (the app) and `companion_record` (what runs beside it)
keep the records of what runs, as untrusted input, proven through `hotmode.procs`.
"""
