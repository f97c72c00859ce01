"""Docker Compose: the deployment folder rendered from the declaration, and the modes run on it.

`render` writes every mode x edition's files, `layout` names them, `engine` finds and runs the
real Compose binary, `docker` runs a mode on an engine, `prod` merges prod per edition for the
orchestrators, `verify` proves the running prod container is the commit.
"""
